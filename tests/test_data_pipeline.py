"""load_datasets end to end on a tiny class-per-folder set; the stored mean; determinism;
the multi-crop evaluator against NumPy."""
import contextlib
import io
import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tests.fixtures import synthetic
from tftransfer.data import evaluation, pipeline, stats
from tftransfer_cli import prepare as prepare_command
from tools import compute_mean

RESIZE, CROP = 12, 8


class PipelineTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(0)
        cls.root = os.path.join(cls.tmp, "toy")
        for split, count in (("train", 5), ("test", 3)):
            for name in ("a", "b", "c"):
                synthetic.write_odd_images(os.path.join(cls.root, split, name), count, rng)
        cls.data_dir = os.path.join(cls.tmp, "data")
        with contextlib.redirect_stdout(io.StringIO()):
            cls.builder = pipeline.prepare("class_folders", cls.data_dir, cls.root,
                                           resize=RESIZE, keep_aspect=True)

    def _load(self, **kwargs):
        args = dict(manual_dir=self.root, batch_size=4, crop_size=CROP, resize=RESIZE,
                    keep_aspect=True, seed=3)
        args.update(kwargs)
        return pipeline.load_datasets("class_folders", self.data_dir, **args)

    def _stored(self, split):
        return [(e["image"], e["label"]) for e in
                self.builder.as_dataset(split, shuffle_files=False).as_numpy_iterator()]

    def test_shapes_dtypes_and_counts(self):
        ds = self._load(mean="imagenet", test_crops="ten")
        self.assertEqual((ds.num_classes, ds.num_train, ds.num_test), (3, 15, 9))
        batches = list(ds.train)
        self.assertLen(batches, 15 // 4)  # Full batches only.
        for images, labels in batches:
            self.assertEqual(images.shape, (4, CROP, CROP, 3))
            self.assertEqual(images.dtype, tf.float32)
            self.assertAllInRange(labels, 0, 2)
        test_images, _ = next(iter(ds.test))
        self.assertEqual(test_images.shape, (4, 10, CROP, CROP, 3))

    def test_compute_mean_tool_stores_the_training_pixel_mean(self):
        args = ["--dataset", "class_folders", "--data_dir", self.data_dir, "--manual_dir",
                self.root, "--resize", str(RESIZE), "--keep_aspect"]
        with contextlib.redirect_stdout(io.StringIO()) as out, \
                self.assertLogs("absl", "INFO") as logs:
            compute_mean.main(args)
            prepare_command.main(args)  # Already prepared: reports splits.
        pixels = np.concatenate([image.reshape(-1, 3) for image, _ in self._stored("train")])
        self.assertAllClose(stats.load_channel_mean(self.builder), pixels.mean(axis=0))
        logged = "\n".join(logs.output)
        self.assertIn("train: 15 images; skipped no file", logged)
        self.assertIn("RGB mean", logged)
        self.assertEqual(out.getvalue(), "")  # absl logging, no print.
        os.remove(stats.mean_path(self.builder))

    def test_stored_mean_is_the_training_pixel_mean_and_is_subtracted(self):
        if os.path.exists(stats.mean_path(self.builder)):
            os.remove(stats.mean_path(self.builder))
        ds = self._load(mean="dataset")
        pixels = np.concatenate([image.reshape(-1, 3) for image, _ in self._stored("train")])
        self.assertAllClose(ds.mean, pixels.mean(axis=0), atol=1e-6)
        self.assertAllClose(stats.load_channel_mean(self.builder), ds.mean)
        # A mean written in the store is the one the pipeline subtracts.
        with open(stats.mean_path(self.builder), "w") as f:
            json.dump({"split": "train", "rgb_mean": [1.0, 2.0, 3.0]}, f)
        ds = self._load(mean="dataset", test_batch_size=100)
        self.assertEqual(ds.mean, (1.0, 2.0, 3.0))
        images, labels = next(iter(ds.test))
        for got, (image, label) in zip(images.numpy(), self._stored("test")):
            top, left = (image.shape[0] - CROP) // 2, (image.shape[1] - CROP) // 2
            expected = image[top:top + CROP, left:left + CROP] - np.array([1.0, 2.0, 3.0])
            self.assertAllClose(got, expected)
        self.assertAllEqual(labels, [label for _, label in self._stored("test")])
        os.remove(stats.mean_path(self.builder))

    def test_seed_gives_deterministic_order_and_augmentation(self):
        def first_epochs(seed):
            ds = self._load(mean="imagenet", seed=seed).train
            return [np.concatenate([b[0].numpy().ravel() for b in ds]) for _ in range(2)]
        a, b, c = first_epochs(5), first_epochs(5), first_epochs(6)
        self.assertAllEqual(a[0], b[0])
        self.assertAllEqual(a[1], b[1])
        self.assertNotAllClose(a[0], a[1])  # A new epoch reshuffles and re-augments.
        self.assertNotAllClose(a[0], c[0])

    def test_crop_larger_than_resize_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "exceeds resize"):
            self._load(crop_size=RESIZE + 1)


class EvaluationTest(tf.test.TestCase):

    def test_average_crops_matches_numpy(self):
        logits = np.random.default_rng(0).normal(size=(2 * 10, 4)).astype(np.float32)
        soft = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        self.assertAllClose(evaluation.average_crops(logits, 10),
                            soft.reshape(2, 10, 4).mean(1), atol=1e-6)
        self.assertAllClose(evaluation.average_crops(logits, 10, "logits"),
                            logits.reshape(2, 10, 4).mean(1), atol=1e-6)

    def test_crop_accuracy_averages_the_crops_of_each_image(self):
        kernel = np.random.default_rng(1).normal(size=(2 * 2 * 3, 3)).astype(np.float32)
        model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Flatten(),
                                  keras.layers.Dense(3, use_bias=False)])
        model.layers[-1].set_weights([kernel])
        crops = np.random.default_rng(2).normal(size=(5, 10, 2, 2, 3)).astype(np.float32)
        logits = crops.reshape(50, 12) @ kernel
        soft = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        predicted = soft.reshape(5, 10, 3).mean(1).argmax(-1)
        labels = np.array([predicted[0], predicted[1], (predicted[2] + 1) % 3,
                           predicted[3], (predicted[4] + 1) % 3])
        dataset = tf.data.Dataset.from_tensor_slices((crops, labels)).batch(2)
        self.assertAllClose(evaluation.crop_accuracy(model, dataset), 3 / 5)
        single = tf.data.Dataset.from_tensor_slices((crops[:, 0], labels)).batch(2)
        expected = np.mean((crops[:, 0].reshape(5, 12) @ kernel).argmax(-1) == labels)
        self.assertAllClose(evaluation.crop_accuracy(model, single), expected)


if __name__ == "__main__":
    tf.test.main()
