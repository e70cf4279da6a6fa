"""The per-pixel training loss and accuracy of segmentation, the ignore label left out.

For logits ``z [B, H, W, K]`` and labels ``y [B, H, W]``, over the counted pixels
``P = {p : y_p != ignore}`` (255 in Cityscapes and SBD):

    CE(z, y) = (1 / max(|P|, 1)) * sum_{p in P} -log softmax(z_p)[y_p]

(0 when every pixel is ignored). With an auxiliary head (PSPNet's, on the fourth stage) the
training network outputs ``[z, z_aux]`` concatenated on the class axis (``2K`` channels)
and the loss is ``CE(z, y) + w * CE(z_aux, y)``, ``w`` = ``--aux_loss_weight``. The
pixel accuracy is ``#{p in P : argmax z_p = y_p} / |P|`` on the main logits.

Under a distribution strategy each replica computes these on its share of the batch and
Keras averages the replicas (the mean of per-replica means): :class:`SegmentationLoss`
returns per-example terms whose batch mean is the loss, so Keras' reduction divides it by
the number of replicas like the penalty and the gradients sum to the mean. Keras ops only
(any backend).
"""
import keras
from keras import ops

from tftransfer.segmentation.metrics import IGNORE_LABEL


def pixel_sums(labels, logits, ignore_label=IGNORE_LABEL):
    """``(S [B], n [B])``: per example, the sum over its counted pixels of
    ``-log softmax(z_p)[y_p]`` and their number."""
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    counted = ops.not_equal(labels, ignore_label)
    safe = ops.where(counted, labels, ops.zeros_like(labels))
    log_p = ops.log_softmax(logits, axis=-1)
    picked = ops.squeeze(ops.take_along_axis(log_p, ops.expand_dims(safe, -1), axis=-1), -1)
    weights = ops.cast(counted, "float32")
    axes = tuple(range(1, len(weights.shape)))
    return -ops.sum(picked * weights, axis=axes), ops.sum(weights, axis=axes)


def masked_cross_entropy(labels, logits, ignore_label=IGNORE_LABEL):
    """``CE(logits, labels)`` of the module docstring, a float32 scalar."""
    sums, counts = pixel_sums(labels, logits, ignore_label)
    return ops.sum(sums) / ops.maximum(ops.sum(counts), 1.0)


@keras.saving.register_keras_serializable(package="tftransfer")
class SegmentationLoss(keras.losses.Loss):
    """``CE(z, y) + aux_weight * CE(z_aux, y)`` (module docstring); ``num_classes`` splits
    the ``2K`` channels of a network with an auxiliary head (``aux_weight`` not None)."""

    def __init__(self, num_classes, aux_weight=None, ignore_label=IGNORE_LABEL,
                 name="segmentation_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.aux_weight = int(num_classes), aux_weight
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        """Per example ``b`` of the ``B``: ``B (S_b + w S_aux_b) / sum_b n_b``, whose mean
        over the batch (Keras' reduction, which also divides by the replicas under a
        strategy) is the loss of the module docstring."""
        k = self.num_classes
        sums, counts = pixel_sums(y_true, y_pred[..., :k], self.ignore_label)
        if self.aux_weight is not None:
            sums = sums + self.aux_weight * pixel_sums(y_true, y_pred[..., k:],
                                                       self.ignore_label)[0]
        batch = ops.cast(ops.shape(sums)[0], "float32")
        return sums * batch / ops.maximum(ops.sum(counts), 1.0)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "aux_weight": self.aux_weight, "ignore_label": self.ignore_label}


@keras.saving.register_keras_serializable(package="tftransfer")
class PixelAccuracy(keras.metrics.Metric):
    """Running pixel accuracy of the first ``num_classes`` channels, ignored pixels left
    out (module docstring)."""

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.ignore_label = int(num_classes), int(ignore_label)
        self.correct = self.add_variable((), "zeros", name="correct", dtype="float32")
        self.counted = self.add_variable((), "zeros", name="counted", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(y_true, "int32")
        predicted = ops.cast(ops.argmax(y_pred[..., :self.num_classes], axis=-1), "int32")
        counted = ops.cast(ops.not_equal(labels, self.ignore_label), "float32")
        hits = ops.cast(ops.equal(labels, predicted), "float32") * counted
        self.correct.assign_add(ops.sum(hits))
        self.counted.assign_add(ops.sum(counted))

    def result(self):
        return self.correct / ops.maximum(self.counted, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.counted.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_label": self.ignore_label}
