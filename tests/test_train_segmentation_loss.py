"""The segmentation training loss and pixel accuracy against NumPy written from the formula:
CE = sum over the pixels not labelled 255 of -log softmax(z)[y], divided by their count;
with an auxiliary head, CE(z) + w CE(z_aux) on the two halves of the class axis."""
import numpy as np
import tensorflow as tf

from tftransfer.training import segmentation_loss


def numpy_cross_entropy(labels, logits, ignore=255):
    total, count = 0.0, 0
    for b, i, j in np.ndindex(labels.shape):
        y = labels[b, i, j]
        if y == ignore:
            continue
        z = logits[b, i, j].astype(np.float64)
        log_sum = np.log(np.sum(np.exp(z - z.max()))) + z.max()
        total += log_sum - z[y]
        count += 1
    return total / count if count else 0.0


class SegmentationLossTest(tf.test.TestCase):

    def setUp(self):
        rng = np.random.default_rng(3)
        self.k = 5
        self.logits = rng.normal(0, 3, (2, 6, 7, self.k)).astype(np.float32)
        self.labels = rng.integers(0, self.k, (2, 6, 7))
        self.labels[rng.random((2, 6, 7)) < 0.3] = 255

    def test_cross_entropy_ignores_255_and_averages_the_counted_pixels(self):
        expected = numpy_cross_entropy(self.labels, self.logits)
        got = float(segmentation_loss.masked_cross_entropy(self.labels, self.logits))
        self.assertAllClose(got, expected, rtol=1e-5)
        # The ignored pixels' logits do not matter; the counted ones do.
        changed = self.logits.copy()
        changed[self.labels == 255] = 50.0
        self.assertAllClose(float(segmentation_loss.masked_cross_entropy(self.labels, changed)),
                            expected, rtol=1e-5)
        counted = np.argwhere(self.labels != 255)[0]
        changed[(*counted, 0)] += 10.0
        self.assertNotAllClose(
            float(segmentation_loss.masked_cross_entropy(self.labels, changed)), expected)

    def test_all_ignored_gives_zero_not_nan(self):
        labels = np.full((1, 3, 3), 255)
        self.assertEqual(float(segmentation_loss.masked_cross_entropy(
            labels, np.zeros((1, 3, 3, 2), np.float32))), 0.0)

    def test_auxiliary_loss_is_weighted(self):
        rng = np.random.default_rng(4)
        aux = rng.normal(0, 2, self.logits.shape).astype(np.float32)
        joined = np.concatenate([self.logits, aux], axis=-1)
        loss = segmentation_loss.SegmentationLoss(self.k, aux_weight=0.4)
        expected = (numpy_cross_entropy(self.labels, self.logits)
                    + 0.4 * numpy_cross_entropy(self.labels, aux))
        self.assertAllClose(float(loss(self.labels, joined)), expected, rtol=1e-5)
        # Per-example terms whose batch mean is the loss: Keras' reduction (and its division
        # by the replicas of a strategy) then applies, as to every Keras loss.
        terms = loss.call(self.labels, joined)
        self.assertEqual(tuple(terms.shape), (2,))
        self.assertAllClose(float(np.mean(terms)), expected, rtol=1e-5)
        plain = segmentation_loss.SegmentationLoss(self.k)
        self.assertAllClose(float(plain(self.labels, self.logits)),
                            numpy_cross_entropy(self.labels, self.logits), rtol=1e-5)

    def test_pixel_accuracy_counts_only_labelled_pixels(self):
        metric = segmentation_loss.PixelAccuracy(self.k)
        aux = np.zeros_like(self.logits)
        aux[..., 0] = 100.0  # the auxiliary half must not be read
        metric.update_state(self.labels, np.concatenate([self.logits, aux], axis=-1))
        keep = self.labels != 255
        expected = np.mean(np.argmax(self.logits, -1)[keep] == self.labels[keep])
        self.assertAllClose(float(metric.result()), expected)


if __name__ == "__main__":
    tf.test.main()
