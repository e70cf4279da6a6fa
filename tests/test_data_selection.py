"""load_datasets' selection and augmentation options on a tiny class-per-folder tree:
counts, relabelling, validation carved from train/ only, the test split never opened
for selection; the honest preparation log line."""
import contextlib
import io
import os
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from tftransfer.data import pipeline, subsets
from tftransfer.data.builders import base
from tests.fixtures import synthetic

SIZE = 8  # resize == crop: a central crop is the whole stored image.
CLASSES = ("a", "b", "c")
TRAIN_PER_CLASS, TEST_PER_CLASS = 6, 3


def write_tree(root, splits, seed=0):
    rng = np.random.default_rng(seed)
    for split, count in splits:
        for name in CLASSES:
            synthetic.write_odd_images(os.path.join(root, split, name), count, rng)


class SelectionTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.root = os.path.join(cls.tmp, "toy")
        write_tree(cls.root, (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)))
        cls.data_dir = os.path.join(cls.tmp, "data")
        with contextlib.redirect_stdout(io.StringIO()):
            cls.builder = pipeline.prepare("class_folders", cls.data_dir, cls.root,
                                           resize=SIZE)
        # Stored image bytes -> file name ("train/b/0003.jpg"), over both splits.
        cls.names = {}
        for split in ("train", "test"):
            for e in cls.builder.as_dataset(split, shuffle_files=False).as_numpy_iterator():
                cls.names[e["image"].tobytes()] = e["image/filename"].decode()
        assert len(cls.names) == 3 * (TRAIN_PER_CLASS + TEST_PER_CLASS)  # All distinct.

    def _load(self, **kwargs):
        args = dict(manual_dir=self.root, batch_size=1, crop_size=SIZE, resize=SIZE,
                    mean=(0.0, 0.0, 0.0), seed=3, color_jitter=False, mirror=False)
        args.update(kwargs)
        return pipeline.load_datasets("class_folders", self.data_dir, **args)

    def _files(self, dataset):
        """``[(file name, label)]`` of a pipeline whose images are stored images."""
        out = []
        for images, labels in dataset:
            for image, label in zip(images.numpy(), labels.numpy()):
                out.append((self.names[image.astype(np.uint8).tobytes()], int(label)))
        return out

    def _check_labels(self, files, class_names):
        for name, label in files:
            self.assertEqual(name.split("/")[1], class_names[label])

    def test_defaults_are_the_whole_splits(self):
        ds = self._load()
        self.assertEqual((ds.num_train, ds.num_test, ds.num_classes, ds.eval_split),
                         (18, 9, 3, "test"))
        self.assertIsNone(ds.validation)
        self.assertEqual(ds.num_validation, 0)
        train = self._files(ds.train)
        self.assertCountEqual([n for n, _ in train],
                              [n for n in self.names.values() if n.startswith("train/")])
        self._check_labels(train, list(CLASSES))

    def test_classes_and_examples_per_class_subsample_and_relabel(self):
        ds = self._load(classes=["c", "a"], examples_per_class=4, split_seed=5)
        self.assertEqual(ds.class_names, ["c", "a"])
        self.assertEqual((ds.num_classes, ds.num_train, ds.num_test), (2, 8, 6))
        train, test = self._files(ds.train), self._files(ds.test)
        self.assertLen(train, 8)
        self.assertLen(set(train), 8)
        self._check_labels(train, ["c", "a"])
        self._check_labels(test, ["c", "a"])
        self.assertCountEqual([label for _, label in train], [0] * 4 + [1] * 4)
        self.assertTrue(all(n.startswith("train/") for n, _ in train))
        self.assertCountEqual([n for n, _ in test],
                              [n for n in self.names.values()
                               if n.startswith(("test/a/", "test/c/"))])
        # Integer labels select the same classes; another seed another draw.
        same = self._files(self._load(classes=[2, 0], examples_per_class=4, split_seed=5).train)
        self.assertCountEqual(same, train)
        other = self._files(self._load(classes=[2, 0], examples_per_class=4, split_seed=6).train)
        self.assertNotEqual(sorted(other), sorted(train))

    def test_the_draw_is_split_indices_on_the_stored_labels(self):
        stored = [(e["image/filename"].decode(), e["label"]) for e in self.builder.as_dataset(
            "train", shuffle_files=False).as_numpy_iterator()]
        labels = np.array([label for _, label in stored])
        train_idx, val_idx = subsets.split_indices(labels, 4, 0.25, seed=8)
        ds = self._load(examples_per_class=4, validation_fraction=0.25, split_seed=8)
        self.assertCountEqual([n for n, _ in self._files(ds.train)],
                              [stored[i][0] for i in train_idx])
        self.assertCountEqual([n for n, _ in self._files(ds.validation)],
                              [stored[i][0] for i in val_idx])

    def test_validation_fraction_holds_out_train_images_only(self):
        ds = self._load(validation_fraction=0.5, split_seed=1)
        self.assertEqual((ds.num_train, ds.num_validation, ds.num_test), (9, 9, 9))
        train, val = self._files(ds.train), self._files(ds.validation)
        self.assertTrue(all(n.startswith("train/") for n, _ in val))
        self.assertEmpty({n for n, _ in train} & {n for n, _ in val})
        self.assertLen({n for n, _ in train} | {n for n, _ in val}, 18)
        self._check_labels(val, list(CLASSES))
        self.assertEqual(ds.eval_split, "test")
        self.assertTrue(all(n.startswith("test/") for n, _ in self._files(ds.test)))

    def test_evaluate_on_validation_never_opens_the_test_split(self):
        opened = []
        as_dataset = base.ResizedImageBuilder.as_dataset

        def recording(builder, split, *args, **kwargs):
            opened.append(str(split))
            return as_dataset(builder, split, *args, **kwargs)

        with mock.patch.object(base.ResizedImageBuilder, "as_dataset", recording):
            ds = self._load(classes=["b", "c"], validation_fraction=0.5,
                            evaluate_on="validation", test_crops="ten")
            self.assertEqual((ds.eval_split, ds.num_test, ds.num_validation), ("validation",
                                                                               6, 6))
            crops, labels = next(iter(ds.test))
            self.assertEqual(crops.shape, (1, 10, SIZE, SIZE, 3))
            list(ds.train)
        self.assertNotIn("test", opened)
        self.assertIn("train", opened)

    def test_folds_partition_the_kept_train_images(self):
        seen, kept = [], None
        for fold in range(3):
            ds = self._load(examples_per_class=5, folds=3, fold=fold, split_seed=2,
                            evaluate_on="validation")
            train, val = self._files(ds.train), self._files(ds.test)
            self.assertEqual(ds.num_test, len(val))
            self.assertLen(val, 3 * (2 if fold < 2 else 1))  # 5 into 3 folds: 2, 2, 1.
            self.assertTrue(all(n.startswith("train/") for n, _ in val))
            self._check_labels(val, list(CLASSES))
            names = {n for n, _ in train} | {n for n, _ in val}
            self.assertEmpty({n for n, _ in train} & {n for n, _ in val})
            kept = names if kept is None else kept
            self.assertEqual(names, kept)  # Every fold keeps the same 15 images.
            seen += [n for n, _ in val]
        self.assertLen(seen, 15)
        self.assertEqual(set(seen), kept)  # Each kept image in exactly one fold.

    def test_a_tree_without_test_is_enough_to_evaluate_on_validation(self):
        root = os.path.join(self.tmp, "no_test")
        write_tree(root, (("train", 4),), seed=1)
        with contextlib.redirect_stdout(io.StringIO()):
            ds = pipeline.load_datasets("class_folders", self.data_dir, manual_dir=root,
                                        batch_size=2, crop_size=SIZE, resize=SIZE,
                                        mean="imagenet", validation_fraction=0.25,
                                        evaluate_on="validation")
        self.assertEqual((ds.num_train, ds.num_test), (9, 3))
        with self.assertRaisesRegex(ValueError, "has no test/ split"):
            pipeline.load_datasets("class_folders", self.data_dir, manual_dir=root,
                                   crop_size=SIZE, resize=SIZE, mean="imagenet")

    def test_pad_and_mirror_reach_the_training_pipeline(self):
        ds = self._load(pad=2, batch_size=18, seed=4)
        images = next(iter(ds.train))[0].numpy()
        self.assertTrue((images == 0).all(axis=-1).any())  # Some crops show the zero border.
        mirrored = self._load(mirror=True, batch_size=18, seed=4)
        flipped = 0
        for image in next(iter(mirrored.train))[0].numpy():
            key = image.astype(np.uint8).tobytes()
            if key not in self.names:
                self.assertIn(image[:, ::-1].astype(np.uint8).tobytes(), self.names)
                flipped += 1
        self.assertGreater(flipped, 0)
        jittered = next(iter(self._load(color_jitter=True, batch_size=18).train))[0].numpy()
        self.assertTrue(any(image.astype(np.uint8).tobytes() not in self.names
                            and image[:, ::-1].astype(np.uint8).tobytes() not in self.names
                            for image in jittered))

    def test_bad_options_are_refused_with_the_fix(self):
        cases = [
            (dict(classes=["a", "zebra"]), r"\['zebra'\] are not classes.*a, b, c"),
            (dict(classes=[0, 3]), r"\[3\] are not labels.*0..2"),
            (dict(classes=["a", "a"]), "more than once"),
            (dict(examples_per_class=7), "examples_per_class=7 but class"),
            (dict(evaluate_on="validation"), "needs images held out"),
            (dict(evaluate_on="val"), "evaluate_on='val'"),
            (dict(folds=3, fold=3), "fold=3 with folds=3"),
            (dict(fold=1), "fold=1 without folds"),
        ]
        for kwargs, message in cases:
            with self.subTest(**kwargs), self.assertRaisesRegex(ValueError, message):
                self._load(**kwargs)


class PrepareLogTest(tf.test.TestCase):

    def test_preparing_local_files_says_nothing_is_downloaded(self):
        tmp = tempfile.mkdtemp()
        root = os.path.join(tmp, "mine")
        write_tree(root, (("train", 1),), seed=2)
        with contextlib.redirect_stdout(io.StringIO()) as out, \
                self.assertLogs("absl", "INFO") as logs:
            pipeline.prepare("class_folders", os.path.join(tmp, "data"), root, resize=SIZE)
        logged = "\n".join(logs.output)
        self.assertIn(f"from {root} (local files, nothing is downloaded)", logged)
        self.assertIn("Prepared class_folders", logged)
        self.assertNotIn("Downloading and preparing", out.getvalue())
        self.assertNotIn("downloaded and prepared", out.getvalue())


if __name__ == "__main__":
    tf.test.main()
