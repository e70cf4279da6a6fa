"""Issue 16: every data option applies to the chosen dataset or is refused before any work
(naming the dataset and what to use instead), and results.json records what was applied;
image channels checked against the source network before anything is built; a weights
file that does not fit named in one short line; the run record's cross-entropy and
timings."""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tests.test_demo import write_tiny_fashion
from tests.train_testutil import tiny_config
from tftransfer.models.small_resnet import small_resnet
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib
from tftransfer.training import preflight
from tftransfer.training.data import synthetic_images
from tftransfer.training.evaluate import accuracy_and_cross_entropy
from tftransfer.training.run import run

WIDTHS = [4, 8]
CLASSES = ("b", "c", "d")


def write_class_folders(root, per_class_train, per_class_test, size=20, seed=0):
    """A class-per-folder tree of learnable images (a colour and stripes per class)."""
    images, labels = synthetic_images(len(CLASSES), per_class_train + per_class_test, size,
                                      seed)
    per_class = per_class_train + per_class_test
    for i, (image, label) in enumerate(zip(images, labels)):
        split = "train" if i % per_class < per_class_train else "test"
        folder = os.path.join(root, split, CLASSES[label])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(os.path.join(folder, f"{i:04d}.png"))


def refused(config, *fragments):
    """The problems of ``config``, checked to contain every fragment."""
    try:
        config_lib.validate(config)
    except config_lib.ConfigError as error:
        message = str(error)
    else:
        raise AssertionError(f"{fragments} not refused")
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


class OptionsTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.tree = os.path.join(cls.tmp, "tree")
        write_class_folders(cls.tree, 6, 2)
        cls.fashion_dir = os.path.join(cls.tmp, "fashion")
        write_tiny_fashion(cls.fashion_dir, per_class_train=6, per_class_test=2)

    def folders(self, **overrides):
        values = dict(dataset="class_folders", data_dir=os.path.join(self.tmp, "tfds"),
                      manual_dir=self.tree, model_widths=WIDTHS, train_steps=4,
                      lr_boundaries=[2], checkpoint_every=0, export=False, source="none",
                      scheme="l2")
        values.update(overrides)
        return tiny_config(os.path.join(self.tmp, f"run{len(os.listdir(self.tmp))}"),
                           **values)

    def fashion(self, **overrides):
        values = dict(dataset="fashion_mnist", data_dir=self.fashion_dir, resize=28,
                      crop_size=28, model_widths=WIDTHS, train_steps=4, lr_boundaries=[2],
                      checkpoint_every=0, export=False, source="none", scheme="l2")
        values.update(overrides)
        return tiny_config(os.path.join(self.tmp, f"run{len(os.listdir(self.tmp))}"),
                           **values)

    def test_options_that_do_not_apply_are_refused_with_the_alternative(self):
        refused(self.fashion(manual_dir="/x"), "--manual_dir applies to the tfds-prepared",
                "--dataset=fashion_mnist", "--data_dir names its files")
        refused(self.fashion(keep_aspect=True), "--keep_aspect", "--dataset=fashion_mnist")
        refused(self.fashion(split_seed=3), "--split_seed=3", "--dataset=fashion_mnist",
                "set --examples_per_class, --validation_fraction or --cv_folds")
        refused(self.folders(split_seed=3), "--dataset=class_folders draws nothing")
        refused(self.folders(grey_to_rgb=True), "--grey_to_rgb applies to "
                "--dataset=fashion_mnist only")
        refused(self.fashion(classes=["a", "b"]), "integer labels 0 to 9")
        refused(tiny_config(None, data_dir="/x"), "--data_dir does not apply to "
                "--dataset=synthetic")
        refused(self.folders(cv_folds=3), "--cv_fold=None with --cv_folds=3", "0..2")
        refused(self.folders(cv_fold=0), "--cv_fold=0 without --cv_folds")
        refused(self.folders(cv_folds=2, cv_fold=0, validation_fraction=0.2),
                "give one of them")
        refused(self.folders(source_eval_examples=5), "--source_eval_examples applies with "
                "--source_eval_dataset only")
        refused(self.folders(tpu="local"), "--tpu applies with --strategy=tpu only")
        with self.assertRaisesRegex(config_lib.ConfigError,
                                    "--color_jitter changes colours, but --dataset="
                                    "fashion_mnist has 1-channel .* add --grey_to_rgb"):
            run(self.fashion(color_jitter=True))
        # Refused at load time, still before training: more images than a class has.
        with self.assertRaisesRegex(config_lib.ConfigError,
                                    "--dataset=class_folders: examples_per_class=7 .* at "
                                    "most 6"):
            run(self.folders(examples_per_class=7))

    def test_selection_and_augmentation_apply_to_class_folders(self):
        config = self.folders(classes=["d", "b"], examples_per_class=4, split_seed=2,
                              validation_fraction=0.5, pad=2, mirror=False)
        record = run(config)
        self.assertEqual((record["num_classes"], record["num_train"], record["num_eval"],
                          record["eval_split"]), (2, 4, 4, "validation"))
        flags = record["flags"]
        self.assertEqual((flags["classes"], flags["examples_per_class"], flags["split_seed"],
                          flags["validation_fraction"], flags["pad"], flags["mirror"],
                          flags["color_jitter"]), (["d", "b"], 4, 2, 0.5, 2, False, True))
        timings = record["timings"]
        for part in ("process_s", "before_run_s", "run_s", "setup_s", "data_s", "model_s",
                     "train_s", "eval_s"):
            self.assertGreaterEqual(timings[part], 0.0, part)
        self.assertGreaterEqual(timings["process_s"], timings["run_s"])
        parts = sum(timings[p] for p in ("setup_s", "data_s", "model_s", "train_s",
                                         "eval_s"))
        self.assertLessEqual(parts, timings["run_s"] + 1e-6)
        self.assertTrue(np.isfinite(record["cross_entropy"]))

    def test_results_record_the_dataset_defaults_applied(self):
        folders = run(self.folders())["flags"]
        self.assertEqual((folders["mirror"], folders["color_jitter"], folders["pad"]),
                         (True, True, 0))
        grey = run(self.fashion(classes=[1, 2]))
        self.assertEqual((grey["flags"]["mirror"], grey["flags"]["color_jitter"],
                          grey["num_classes"]), (False, False, 2))
        rgb = run(self.fashion(classes=[1, 2], grey_to_rgb=True, mirror=True))["flags"]
        self.assertEqual((rgb["mirror"], rgb["color_jitter"], rgb["grey_to_rgb"]),
                         (True, True, True))

    def test_cross_entropy_is_the_mean_negative_log_probability(self):
        model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(4)])
        x = np.random.default_rng(0).normal(size=(10, 2, 2, 1)).astype(np.float32)
        y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
        accuracy, loss = accuracy_and_cross_entropy(model, ds)
        logits = model(x).numpy().astype(np.float64)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        self.assertAllClose(loss, -log_p[np.arange(10), y].mean(), rtol=1e-5)
        self.assertEqual(accuracy, np.mean(logits.argmax(axis=1) == y))


class ChannelsTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.fashion_dir = os.path.join(cls.tmp, "fashion")
        write_tiny_fashion(cls.fashion_dir, per_class_train=2, per_class_test=1)
        cls.weights = {}
        for channels in (1, 3):
            path = os.path.join(cls.tmp, f"source{channels}.weights.h5")
            small_resnet((16, 16, channels), 4, widths=WIDTHS).save_weights(path)
            cls.weights[channels] = path

    def config(self, **overrides):
        values = dict(model_widths=WIDTHS, source="custom", source_classes=4)
        values.update(overrides)
        return config_lib.validate(tiny_config(os.path.join(self.tmp, "never"), **values))

    def fashion(self, **overrides):
        return self.config(dataset="fashion_mnist", data_dir=self.fashion_dir, resize=28,
                           crop_size=28, **overrides)

    def problem(self, config):
        with self.assertRaises(config_lib.ConfigError) as caught:
            run(config)  # stops in the preflight: before data, model or output directory
        self.assertFalse(os.path.exists(config.runtime.output_dir))
        lines = str(caught.exception).splitlines()
        self.assertLen(lines, 2, lines)
        return lines[1]

    def test_grey_images_and_an_rgb_source(self):
        line = self.problem(self.fashion(weights=self.weights[3]))
        self.assertIn("is a network for 3-channel (RGB) inputs but --dataset=fashion_mnist "
                      "has 1-channel (grey) images: add --grey_to_rgb", line)
        line = self.problem(self.fashion(source="imagenet", source_classes=None,
                                         arch="resnet50", model_widths=[]))
        self.assertIn("--source=imagenet is a network for 3-channel (RGB)", line)
        self.assertIn("--grey_to_rgb", line)
        for config in (self.fashion(weights=self.weights[3], grey_to_rgb=True),
                       self.fashion(weights=self.weights[1])):
            preflight.check(config_lib.dataset_defaults(config, 3 if config.data.
                                                        fashion_mnist.grey_to_rgb else 1))
        self.assertEqual(preflight.channel_problems(
            self.fashion(source="imagenet", grey_to_rgb=True), (28, 28, 3)), [])

    def test_rgb_images_and_a_grey_source(self):
        line = self.problem(self.config(weights=self.weights[1]))
        self.assertIn("is a network for 1-channel (grey) inputs but --dataset=synthetic has "
                      "3-channel (RGB) images; a grey network cannot read colour", line)
        line = self.problem(self.fashion(weights=self.weights[1], grey_to_rgb=True))
        self.assertIn("drop --grey_to_rgb", line)

    def test_rgb_folders_and_a_grey_source_with_rgb_to_grey(self):
        tree = os.path.join(self.tmp, "tree")
        if not os.path.isdir(tree):
            write_class_folders(tree, per_class_train=4, per_class_test=2)
        folders = dict(dataset="class_folders", manual_dir=tree,
                       data_dir=os.path.join(self.tmp, "tfds"), weights=self.weights[1],
                       train_steps=4, lr_boundaries=[2], checkpoint_every=0, export=False)
        line = self.problem(self.config(**folders))
        self.assertIn("is a network for 1-channel (grey) inputs but --dataset=class_folders "
                      "has 3-channel (RGB) images: add --rgb_to_grey", line)
        record = run(config_lib.replace(self.config(rgb_to_grey=True, **folders),
                                        output_dir=os.path.join(self.tmp, "grey")))
        self.assertEqual((record["flags"]["rgb_to_grey"], record["flags"]["color_jitter"]),
                         (True, False))
        refused(tiny_config(self.tmp, rgb_to_grey=True), "--rgb_to_grey applies to the "
                "tfds-prepared datasets")

    def test_to_grey_is_the_luma_of_the_rgb_pixels(self):
        rgb = np.random.default_rng(0).uniform(0, 255, (2, 5, 4, 4, 3)).astype("float32")
        labels = np.arange(2)
        grey, out = next(iter(data_lib.to_grey(tf.data.Dataset.from_tensors((rgb, labels)))))
        expected = (0.2989 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])[..., None]
        self.assertAllClose(grey, expected, rtol=1e-5, atol=1e-3)
        self.assertAllEqual(out, labels)

    def test_weights_that_do_not_fit_one_short_line(self):
        line = self.problem(self.config(weights=self.weights[3], model_widths=[8, 16]))
        self.assertLess(len(line), 400, line)
        for fragment in ("layer 'stem_conv'", "(3, 3, 3, 4) in the file",
                         "(3, 3, 3, 8) in the model"):
            self.assertIn(fragment, line)


class WithoutEffectTest(tf.test.TestCase):
    """Penalty options that change nothing in a run are refused when set, and listed in
    results.json when left at their defaults."""

    def config(self, **overrides):
        return tiny_config(tempfile.mkdtemp(), **overrides)

    def test_strengths_without_effect_are_refused(self):
        refused(self.config(scheme="none", alpha=1e-3), "--alpha=0.001 has no effect",
                "--scheme=none adds no penalty")
        refused(self.config(scheme="none", penalize_all_trainable=True),
                "--penalize_all_trainable=True has no effect")
        refused(self.config(source="none", weights=None, scheme="l2", alpha=0.5),
                "--alpha=0.5 has no effect", "every layer is new and gets --beta")
        refused(self.config(scheme="l2_sp", epsilon=1e-8), "--epsilon=1e-08 has no effect")

    def test_defaults_and_zero_strengths_pass_and_applied_options_stay(self):
        for overrides in (dict(scheme="none"), dict(scheme="none", alpha=0.0, beta=0.0),
                          dict(source="none", weights=None, scheme="l2", beta=0.1),
                          dict(scheme="l1_sp", epsilon=1e-8), dict(scheme="l2_sp", alpha=3.0)):
            with self.subTest(**overrides):
                config_lib.validate(self.config(**overrides))
        self.assertEqual(config_lib.without_effect(self.config(scheme="l1_sp")), {})
        self.assertEqual(sorted(config_lib.without_effect(self.config(scheme="l2_sp"))),
                         ["epsilon"])

    def test_results_list_what_had_no_effect(self):
        record = run(self.config(source="none", weights=None, scheme="l2", train_steps=3,
                                 lr_boundaries=[]))
        self.assertEqual(record["without_effect"], ["alpha", "epsilon"])
