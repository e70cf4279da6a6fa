"""mIoU (Li et al. 2018, Table 4) against per-class counts written out in NumPy, with the
ignore label; Keras' streaming metric gives the same value; the poly schedule equals its
formula."""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.segmentation import metrics
from tftransfer.segmentation.schedules import PolyDecay

NUM_CLASSES = 5


def reference_miou(labels, predictions, num_classes, ignore=255):
    """IoU_c = TP / (TP + FP + FN) over the non-ignored pixels, averaged over the classes
    with a non-zero denominator."""
    valid = labels != ignore
    ious = []
    for c in range(num_classes):
        tp = np.sum(valid & (labels == c) & (predictions == c))
        fp = np.sum(valid & (labels != c) & (predictions == c))
        fn = np.sum(valid & (labels == c) & (predictions != c))
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return float(np.mean(ious))


class MeanIoUTest(tf.test.TestCase):

    def random_maps(self, seed, shape=(3, 17, 23)):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, NUM_CLASSES, shape)
        labels[rng.random(shape) < 0.2] = 255  # ignored pixels
        predictions = np.where(rng.random(shape) < 0.5, labels % NUM_CLASSES,
                               rng.integers(0, NUM_CLASSES, shape))
        return labels, predictions

    def test_mean_iou_equals_the_per_class_counts(self):
        for seed in range(4):
            labels, predictions = self.random_maps(seed)
            confusion = metrics.confusion_matrix(labels, predictions, NUM_CLASSES)
            self.assertEqual(confusion.sum(), np.sum(labels != 255))
            self.assertAllClose(metrics.mean_iou(confusion),
                                reference_miou(labels, predictions, NUM_CLASSES))

    def test_an_absent_class_is_left_out_of_the_mean(self):
        labels = np.array([0, 0, 1, 1, 255])
        predictions = np.array([0, 1, 1, 1, 3])  # class 2, 3, 4 never true nor predicted
        confusion = metrics.confusion_matrix(labels, predictions, NUM_CLASSES)
        self.assertAllClose(metrics.mean_iou(confusion), (1 / 2 + 2 / 3) / 2)
        self.assertTrue(np.isnan(metrics.iou_per_class(confusion)[2]))

    def test_keras_metric_agrees(self):
        labels, predictions = self.random_maps(7)
        logits = keras.ops.one_hot(predictions, NUM_CLASSES)
        metric = metrics.keras_mean_iou(NUM_CLASSES)
        metric.update_state(labels, logits)
        self.assertAllClose(float(metric.result()),
                            reference_miou(labels, predictions, NUM_CLASSES), rtol=1e-6)

    def test_bad_labels_are_named(self):
        with self.assertRaisesRegex(ValueError, r"labels \[7\] are outside 0..4"):
            metrics.confusion_matrix([0, 7], [0, 1], NUM_CLASSES)
        with self.assertRaisesRegex(ValueError, "every label is the ignore label"):
            metrics.mean_iou(metrics.confusion_matrix([255], [0], NUM_CLASSES))


class PolyDecayTest(tf.test.TestCase):

    def test_poly_equals_the_formula(self):
        schedule = PolyDecay(0.01, 1000, power=0.9)
        for step in (0, 1, 250, 999, 1000, 1500):
            expected = 0.01 * (1 - min(step, 1000) / 1000) ** 0.9
            self.assertAllClose(float(schedule(step)), expected, rtol=1e-5, atol=1e-12)
        clone = PolyDecay.from_config(schedule.get_config())
        self.assertAllClose(float(clone(500)), float(schedule(500)))
        with self.assertRaisesRegex(ValueError, "decay_steps must be > 0"):
            PolyDecay(0.01, 0)
