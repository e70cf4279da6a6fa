"""The three batch-norm modes of segmentation fine-tuning (paper, Table 3) as layer factories.

- ``frozen``: statistics, scale and offset frozen: a plain ``BatchNormalization`` made
  non-trainable (Keras then runs it in inference mode: it normalises with the moving
  statistics and nothing of it is updated);
- ``frozen_stats``: statistics frozen, scale and offset trained:
  :class:`FrozenStatsBatchNormalization`, which always normalises with the moving
  statistics, ``y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta``, and
  never updates them, while ``gamma`` and ``beta`` stay trainable;
- ``train``: everything trained (batch statistics in training, moving averages updated),
  ``keras.layers.BatchNormalization(synchronized=True)`` when asked (the statistics of the
  whole global batch under ``tf.distribute``; TensorFlow backend only).
"""
from typing import Any

import keras

BATCH_NORM_MODES = ("frozen", "frozen_stats", "train")


@keras.saving.register_keras_serializable(package="tftransfer")
class FrozenStatsBatchNormalization(keras.layers.BatchNormalization):
    """Batch norm with frozen statistics and trainable scale and offset: every call, in
    training too, normalises with ``moving_mean`` / ``moving_variance`` and leaves them
    unchanged; ``gamma`` and ``beta`` receive gradients."""

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        return super().call(inputs, training=False, mask=mask)


def check_mode(mode: str, synchronized: bool = False) -> str:
    """``mode`` if it is one of :data:`BATCH_NORM_MODES` (ValueError otherwise)."""
    if mode not in BATCH_NORM_MODES:
        raise ValueError(f"Unknown batch_norm mode {mode!r}; expected one of "
                         f"{BATCH_NORM_MODES} (frozen: nothing of batch norm trained; "
                         "frozen_stats: statistics frozen, scale and offset trained; "
                         "train: everything trained).")
    if synchronized and keras.backend.backend() != "tensorflow":
        raise ValueError("synchronized_bn=True needs the TensorFlow backend (Keras' "
                         "synchronized BatchNormalization); set KERAS_BACKEND=tensorflow or "
                         "synchronized_bn=False.")
    return mode


def batch_norm(name: str, mode: str = "train", synchronized: bool = False,
               momentum: float = 0.99, epsilon: float = 1e-3) -> keras.layers.Layer:
    """A batch-norm layer named ``name`` in ``mode`` (see the module docstring)."""
    check_mode(mode, synchronized)
    if mode == "frozen_stats":
        return FrozenStatsBatchNormalization(momentum=momentum, epsilon=epsilon, name=name)
    layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=name,
                                            synchronized=synchronized and mode == "train")
    if mode == "frozen":
        layer.trainable = False
    return layer
