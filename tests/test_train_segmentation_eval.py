"""The segmentation evaluation of the driver: the confusion matrix accumulated over the
batches of a split, its mIoU / per-class IoU / pixel accuracy / cross-entropy fields, and
confusion_matrix.csv, against NumPy loops written from the definitions."""
import os
import tempfile

import numpy as np
import tensorflow as tf

from tftransfer.training import config as config_lib
from tftransfer.training import segmentation_eval


def numpy_scores(labels, probabilities, k, ignore=255):
    confusion = np.zeros((k, k), np.int64)
    loss, count = 0.0, 0
    for index in np.ndindex(labels.shape):
        y = labels[index]
        if y == ignore:
            continue
        p = probabilities[index]
        confusion[y, int(np.argmax(p))] += 1
        loss += -np.log(max(p[y], 1e-12))
        count += 1
    ious = []
    for c in range(k):
        union = confusion[c, :].sum() + confusion[:, c].sum() - confusion[c, c]
        ious.append(confusion[c, c] / union if union else np.nan)
    return confusion, np.array(ious), np.trace(confusion) / confusion.sum(), loss / count


class SegmentationEvalTest(tf.test.TestCase):

    def setUp(self):
        rng = np.random.default_rng(0)
        self.k = 4
        logits = rng.normal(0, 2, (5, 6, 8, self.k))
        logits[..., 3] -= 100  # class 3 is never predicted ...
        self.probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        self.labels = rng.integers(0, 3, (5, 6, 8))  # ... nor true: its IoU is undefined
        self.labels[rng.random(self.labels.shape) < 0.25] = 255
        self.dataset = tf.data.Dataset.from_tensor_slices(
            (self.probabilities.astype(np.float32), self.labels.astype(np.int32))).batch(2)

    def test_accumulated_over_batches_equals_numpy(self):
        confusion, cross_entropy, seen = segmentation_eval.evaluate(
            lambda images: images, self.dataset, self.k)  # the "images" are probabilities
        want_confusion, ious, accuracy, want_ce = numpy_scores(
            self.labels, self.probabilities.astype(np.float32), self.k)
        self.assertAllEqual(confusion, want_confusion)
        self.assertEqual(seen, 5)
        self.assertAllClose(cross_entropy, want_ce, rtol=1e-5)
        names = ["background", "a", "b", "never"]
        fields = segmentation_eval.fields(confusion, cross_entropy, names)
        self.assertAllClose(fields["mean_iou"], np.nanmean(ious))
        self.assertAllClose([fields["iou_per_class"][n] for n in names[:3]], ious[:3])
        self.assertIsNone(fields["iou_per_class"]["never"])
        self.assertAllClose(fields["pixel_accuracy"], accuracy)
        self.assertEqual(fields["accuracy"], fields["pixel_accuracy"])
        self.assertEqual(fields["counted_pixels"], int(np.sum(self.labels != 255)))

    def test_confusion_csv_round_trip_with_names(self):
        confusion = np.arange(9).reshape(3, 3)
        path = os.path.join(tempfile.mkdtemp(), "confusion_matrix.csv")
        segmentation_eval.write_confusion_csv(path, confusion, ["bg", "T-shirt/top", "c,d"])
        with open(path) as f:
            self.assertEqual(f.readline().strip(), 'true \\ predicted,bg,T-shirt/top,"c,d"')
        names, read = segmentation_eval.read_confusion_csv(path)
        self.assertEqual(names, ["bg", "T-shirt/top", "c,d"])
        self.assertAllEqual(read, confusion)

    def test_predictor_follows_seg_eval(self):
        """whole: the softmax of the model; sliding: windows of --eval_crop (default the
        crop) and stride (default ceil(2/3 crop)); multi_scale: scales and flip."""
        base = config_lib.make(task="segmentation", dataset="scenes", arch="small_resnet",
                               crop_size=12, scenes_size=32, scenes_scale=[0.5, 1.0])
        calls = []

        def model(x, training=False):
            calls.append(tuple(x.shape[1:3]))
            return tf.concat([x[..., :1], -x[..., :1]], axis=-1)

        images = tf.random.uniform((1, 16, 20, 1))
        whole = segmentation_eval.predictor(base, model)(images)
        self.assertAllClose(whole, tf.nn.softmax(model(images), -1))
        calls.clear()
        sliding = config_lib.replace(base, seg_eval="sliding")
        self.assertEqual((sliding.task.window(sliding), sliding.task.stride(sliding)), (12, 8))
        segmentation_eval.predictor(sliding, model)(images)
        self.assertEqual(set(calls), {(12, 12)})
        self.assertEqual(len(calls), 2 * 2)  # offsets 0,4 down and 0,8 across
        multi = config_lib.replace(base, seg_eval="multi_scale", eval_scales=[1.0, 0.5],
                                   eval_flip=True)
        calls.clear()
        segmentation_eval.predictor(multi, model)(images)
        self.assertCountEqual(calls, [(16, 20), (16, 20), (8, 10), (8, 10)])


if __name__ == "__main__":
    tf.test.main()
