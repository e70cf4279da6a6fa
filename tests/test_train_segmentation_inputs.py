"""The driver's scenes inputs: scenes of the kept classes with masks 1 + class, validation
scenes from held-out items only, the training stream a pure function of the seed (a
resumed run that skips its consumed batches sees the same ones) that keeps grey images
grey; and the poly learning rate of the driver against its formula."""
import numpy as np
import tensorflow as tf

from tftransfer.training import config as config_lib
from tftransfer.training import model as model_lib
from tftransfer.training import segmentation_data

BASE = dict(task="segmentation", dataset="scenes", arch="small_resnet",
            scenes_source="synthetic", scenes_size=32, scenes_scale=[0.5, 1.0],
            scenes_train=10, scenes_test=4, crop_size=24, batch_size=3)


class ScenesInputsTest(tf.test.TestCase):

    def test_scenes_of_the_kept_classes(self):
        config = config_lib.dataset_defaults(config_lib.make(**BASE, classes=["7", "2"]), 1)
        (train_x, train_m), (test_x, test_m), split, names = \
            segmentation_data.scene_arrays(config)
        self.assertEqual((train_x.shape, test_x.shape, split), ((10, 32, 32, 1),
                                                               (4, 32, 32, 1), "test"))
        self.assertEqual(names, ["background", "item7", "item2"])
        self.assertContainsSubset(set(np.unique(train_m)), {0, 1, 2})
        self.assertEqual(set(np.unique(train_m)), {0, 1, 2})
        # Class 7 items are brighter than class 2 items (synthetic_items: 70 + 18 c).
        self.assertGreater(train_x[..., 0][train_m == 1].mean(),
                           train_x[..., 0][train_m == 2].mean())
        again = segmentation_data.scene_arrays(config)
        self.assertAllEqual(again[0][0], train_x)

    def test_validation_scenes_come_from_held_out_items(self):
        config = config_lib.dataset_defaults(
            config_lib.make(**BASE, validation_fraction=0.5), 1)
        (train_x, _), (val_x, _), split, _ = segmentation_data.scene_arrays(config)
        self.assertEqual(split, "validation")
        items, labels = segmentation_data.synthetic_items(
            segmentation_data.SYNTHETIC_ITEMS_PER_CLASS, 0)
        from tftransfer.training import data as data_lib
        (_, _), (held_x, _) = data_lib.split(items, labels, config)
        self.assertLen(held_x, len(items) // 2)
        tested = config_lib.dataset_defaults(config_lib.make(**BASE), 1)
        self.assertNotAllEqual(segmentation_data.scene_arrays(tested)[1][0], val_x)

    def test_stream_is_a_function_of_the_seed_and_resumes(self):
        config = config_lib.dataset_defaults(
            config_lib.make(**BASE, train_scale_min=0.5, train_scale_max=1.5), 1)
        data = segmentation_data.load(config)
        batches = [(x.numpy(), y.numpy()) for x, y in data.train.take(6)]
        self.assertEqual(batches[0][0].shape, (3, 24, 24, 1))
        self.assertEqual(batches[0][1].shape, (3, 24, 24))
        skipped = [(x.numpy(), y.numpy()) for x, y in
                   segmentation_data.load(config).train.skip(4).take(2)]
        for (x, y), (x2, y2) in zip(batches[4:], skipped):
            self.assertAllEqual(x, x2)
            self.assertAllEqual(y, y2)
        other = config_lib.replace(config, seed=1)
        x_other, _ = next(iter(segmentation_data.load(other).train))
        self.assertNotAllEqual(x_other.numpy(), batches[0][0])
        images, masks = next(iter(data.test))
        self.assertEqual((tuple(images.shape), tuple(masks.shape)),
                         ((4, 32, 32, 1), (4, 32, 32)))  # --eval_batch_size 64 > 4
        self.assertEqual((data.num_classes, data.num_train, data.num_test, data.input_shape),
                         (11, 10, 4, (24, 24, 1)))


class PolyScheduleTest(tf.test.TestCase):

    def test_poly_schedule_is_the_formula(self):
        config = config_lib.make(**BASE, lr_schedule="poly", poly_power=0.9,
                                 learning_rate=0.01, train_steps=100)
        schedule = model_lib.learning_rate_schedule(config)
        for t in (0, 1, 50, 99, 100, 150):  # the optimizer's iteration count
            expected = 0.01 * (1 - min(t, 100) / 100) ** 0.9
            self.assertAllClose(float(schedule(t)), expected, atol=1e-9)


if __name__ == "__main__":
    tf.test.main()
