"""In-memory inputs of the driver: padding + random crop + mirror for grey images, upscaled
RGB Fashion-MNIST, the first test images of each class, the source task through the input
hook, and the checks of the dataset options."""
import dataclasses
import os

import numpy as np
import tensorflow as tf

from tests.test_demo import write_tiny_fashion
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib


def _windows(padded, crop):
    """Every crop x crop window of ``padded`` [H, W, C] and its mirror."""
    out = []
    for top in range(padded.shape[0] - crop + 1):
        for left in range(padded.shape[1] - crop + 1):
            window = padded[top:top + crop, left:left + crop]
            out += [window, window[:, ::-1]]
    return out


class GreyAugmentationTest(tf.test.TestCase):

    def test_padded_crops_are_windows_of_the_zero_padded_image(self):
        rng = np.random.default_rng(0)
        images = rng.integers(1, 255, (6, 8, 8, 1)).astype(np.uint8)
        labels = np.arange(6)
        stream = data_lib.stateless_batches(images, labels, 3, seed=5, crop=8, jitter=False,
                                            pad=2)
        shifted = 0
        for x, y in stream.take(6):
            self.assertEqual(x.shape, (3, 8, 8, 1))
            for image, label in zip(x.numpy(), y.numpy()):
                padded = np.pad(images[label], ((2, 2), (2, 2), (0, 0))).astype(np.float32)
                matches = [w for w in _windows(padded, 8) if np.array_equal(w, image)]
                self.assertTrue(matches, "an output is not a window of the padded image")
                shifted += not np.array_equal(image, images[label])
        self.assertGreater(shifted, 0)  # the augmentation does something

    def test_without_padding_nor_mirror_grey_images_pass_unchanged(self):
        images = np.arange(4 * 5 * 5).reshape(4, 5, 5, 1).astype(np.uint8)
        x, y = next(iter(data_lib.stateless_batches(images, np.arange(4), 4, 0, 5, False,
                                                    mirror=False)))
        for image, label in zip(x.numpy(), y.numpy()):
            self.assertAllEqual(image, images[label])

    def test_mirror_flips_some_grey_images_and_nothing_else(self):
        images = np.arange(8 * 5 * 5).reshape(8, 5, 5, 1).astype(np.uint8)
        x, y = next(iter(data_lib.stateless_batches(images, np.arange(8), 8, 0, 5, False,
                                                    mirror=True)))
        flipped = 0
        for image, label in zip(x.numpy(), y.numpy()):
            same = np.array_equal(image, images[label])
            self.assertTrue(same or np.array_equal(image, images[label][:, ::-1]))
            flipped += not same
        self.assertGreater(flipped, 0)


class FashionInputsTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.data_dir = os.path.join(self.get_temp_dir(), "fashion")
        write_tiny_fashion(self.data_dir, per_class_train=6, per_class_test=3)
        self.config = config_lib.make(
            dataset="fashion_mnist", data_dir=self.data_dir, classes=[5, 6], arch="small_resnet",
            source="none", scheme="none", resize=28, crop_size=28, mean="none",
            batch_size=4, eval_batch_size=4)

    def test_resize_grey_upscales_and_repeats_the_channel(self):
        images = np.full((2, 28, 28, 1), 77, np.uint8)
        images[1, :14] = 200
        out = data_lib.resize_grey(images, 56, rgb=True)
        self.assertEqual(out.shape, (2, 56, 56, 3))
        self.assertAllEqual(out[0], np.full((56, 56, 3), 77))  # constant stays constant
        self.assertAllEqual(out[..., 0], out[..., 2])
        self.assertAllEqual(out[1, :20, :, 0], np.full((20, 56), 200))
        self.assertAllEqual(data_lib.resize_grey(images, 28, rgb=False), images)

    def test_rgb_upscaled_fashion_inputs(self):
        config = config_lib.validate(config_lib.replace(self.config, resize=40, crop_size=40))
        data = data_lib.in_memory_inputs(config, *data_lib.arrays(config), pad=3, rgb=True)
        self.assertEqual(data.input_shape, (40, 40, 3))
        x, _ = next(iter(data.train))
        self.assertEqual(x.shape, (4, 40, 40, 3))
        test_x, test_y = next(iter(data.test))
        self.assertEqual(test_x.shape[1:], (40, 40, 3))
        self.assertEqual(data.num_test, 6)

    def test_test_examples_per_class_keeps_the_first_of_each_class(self):
        full = data_lib.load(config_lib.validate(self.config))
        cut = data_lib.in_memory_inputs(self.config, *data_lib.arrays(self.config),
                                        test_examples_per_class=1)
        full_x, full_y = [np.concatenate([b[i].numpy() for b in full.test]) for i in (0, 1)]
        cut_x, cut_y = [np.concatenate([b[i].numpy() for b in cut.test]) for i in (0, 1)]
        firsts = [np.flatnonzero(full_y == c)[0] for c in np.unique(full_y)]
        self.assertEqual(cut.num_test, len(firsts))
        self.assertAllEqual(cut_y, full_y[sorted(firsts)])
        self.assertAllEqual(cut_x, full_x[sorted(firsts)])

    def test_source_task_of_the_driver_has_every_class(self):
        config = config_lib.replace(self.config, source_eval_dataset="fashion_mnist")
        test = data_lib.source_eval_data(config, "unit", 10)
        labels = np.concatenate([y.numpy() for _, y in test])
        self.assertEqual(sorted(set(labels.tolist())), list(range(10)))
        self.assertLen(labels, 30)

    def test_input_hook_gives_the_source_task(self):
        """An :class:`Inputs` subclass passed to the driver replaces its data: here the
        source task keeps three classes."""

        @dataclasses.dataclass(frozen=True)
        class FirstClasses(data_lib.Inputs):
            classes: tuple = (0, 1, 2)

            def identity(self):
                return {"classes": list(self.classes)}

            def source(self, config, num_classes):
                return self.load(config_lib.replace(
                    data_lib.source_config(config, num_classes), classes=list(self.classes)))

        config = config_lib.replace(self.config, source_eval_dataset="fashion_mnist")
        test = data_lib.source_eval_data(config, "unit", 3, FirstClasses())
        labels = np.concatenate([y.numpy() for _, y in test])
        self.assertEqual(sorted(set(labels.tolist())), [0, 1, 2])
        self.assertLen(labels, 9)

    def test_invalid_combinations(self):
        cases = {"set --crop_size=--resize": dict(resize=40, crop_size=32),
                 "--dataset=synthetic's classes are 0 to 3": dict(dataset="synthetic",
                                                                   data_dir=None),
                 "--imagenet_val_dir applies to --dataset=stanford_dogs120 only": dict(
                     imagenet_val_dir="/x"),
                 "--eval_crops=1 only": dict(eval_crops=10, resize=40, crop_size=40),
                 "--grey_to_rgb applies to --dataset=fashion_mnist only": dict(
                     dataset="caltech256_30", classes=[], grey_to_rgb=True)}
        for message, change in cases.items():
            with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(change)):
                config_lib.validate(config_lib.replace(self.config, **change))
