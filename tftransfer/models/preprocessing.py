"""Input preprocessing that matches a set of pretrained weights: the one place it is defined.

Every mode takes float RGB images with pixel values in [0, 255], channels last, and returns
what the network expects. ``mean`` is a per-channel **RGB** mean in the same [0, 255] units;
when given, it replaces the ImageNet mean of the mode (the target-training-set mean
subtraction of the paper's recipe), keeping the mode's scale and channel order.

Modes (x: RGB image in [0, 255]; m: mean; s: std; bgr: reverse the channel axis):

- ``caffe``: ``bgr(x - m)``, m = (123.68, 116.779, 103.939): keras.applications ResNets;
- ``torch``: ``(x/255 - m/255) / s``, m = 255 * (0.485, 0.456, 0.406),
  s = (0.229, 0.224, 0.225): torchvision-layout weights;
- ``tf``: ``(x - m) / 127.5``, m = 127.5, i.e. ``x/127.5 - 1`` in [-1, 1];
- ``unit``: ``(x - m) / 255``, m = 0, i.e. ``x/255``: the small demo ResNet;
- ``dataset_mean``: ``x - m``, m required: raw pixels centred by the training-set mean;
- ``raw``: ``x - m``, m = 0: the pixels as they are, for models that scale their own
  inputs (KerasHub presets, :mod:`tftransfer.models.kerashub`).

Images already centred by a pipeline (``tftransfer.data.preprocessing``) finish with
``mean=0``: the same result as passing the mean here.

:func:`preprocess` works on tensors (use it in ``tf.data.Dataset.map``); :class:`Preprocess`
is the same function as a serialisable Keras layer; :func:`channel_mean` computes ``m`` from
a training set.
"""
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # keras.applications "caffe" mode (as BGR)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)  # torchvision, in [0, 1]
TORCH_STD_RGB = (0.229, 0.224, 0.225)
MODES = ("caffe", "torch", "tf", "unit", "dataset_mean", "raw")

# mode -> (default mean, divisor per channel, reverse RGB->BGR)
_SPEC = {
    "caffe": (CAFFE_MEAN_RGB, (1.0, 1.0, 1.0), True),
    "torch": (tuple(255.0 * m for m in TORCH_MEAN_RGB), tuple(255.0 * s for s in TORCH_STD_RGB),
              False),
    "tf": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), False),
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0), False),
    "dataset_mean": (None, (1.0, 1.0, 1.0), False),
    "raw": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False),  # pixels as they are: the model scales
}


def check_mode(mode: str) -> str:
    """Returns ``mode`` if it is one of :data:`MODES`, else raises a ValueError."""
    if mode not in _SPEC:
        raise ValueError(f"Unknown preprocessing mode {mode!r}; expected one of {MODES}.")
    return mode


def constants(mode: str, mean: Sequence[float] | np.ndarray | None = None,
              channels: int = 3) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(mean, divisor, reverse)`` of ``mode``: the output is ``(x - mean) / divisor``, then
    the channel axis is reversed when ``reverse``. ``mean`` overrides the default mean."""
    default_mean, divisor, reverse = _SPEC[check_mode(mode)]
    if mean is None and default_mean is None:
        raise ValueError("Mode 'dataset_mean' needs `mean`: the per-channel RGB mean of the "
                         "training images in [0, 255] (see channel_mean()).")
    if channels != 3 and mode in ("caffe", "torch"):
        raise ValueError(f"Mode {mode!r} expects 3-channel RGB images, got {channels} "
                         "channel(s); duplicate grey images to 3 channels first.")
    if mean is None:
        mean = default_mean if channels == 3 else default_mean[:1]  # equal entries
    mean = np.asarray(mean, np.float32).reshape(-1)
    divisor = np.asarray(divisor if channels == 3 else divisor[:1], np.float32)
    if mean.size not in (1, channels):
        raise ValueError(f"`mean` must have 1 or {channels} entries (one per channel), got "
                         f"{mean.size}.")
    return mean, divisor, reverse


def preprocess(images: Any, mode: str,
               mean: Sequence[float] | np.ndarray | None = None) -> tf.Tensor:
    """Maps float RGB images in [0, 255] (``[..., H, W, C]``) to the input of ``mode``."""
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
    mean, divisor, reverse = constants(mode, mean, images.shape[-1])
    out = (images - tf.constant(mean, images.dtype)) / tf.constant(divisor, images.dtype)
    return out[..., ::-1] if reverse else out


@keras.saving.register_keras_serializable(package="tftransfer")
class Preprocess(keras.layers.Layer):
    """Keras layer applying :func:`preprocess` with a fixed ``mode`` (and optional ``mean``)."""

    def __init__(self, mode: str, mean: Sequence[float] | np.ndarray | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_mode(mode)
        self.mode = mode
        self.mean = None if mean is None else [float(v) for v in np.reshape(mean, -1)]
        if mode == "dataset_mean" and mean is None:
            constants(mode)  # raises the explanatory error

    def call(self, inputs: Any) -> Any:
        mean, divisor, reverse = constants(self.mode, self.mean, inputs.shape[-1])
        x = keras.ops.cast(inputs, self.compute_dtype)
        out = (x - keras.ops.convert_to_tensor(mean, x.dtype)) / keras.ops.convert_to_tensor(
            divisor, x.dtype)
        return keras.ops.flip(out, axis=-1) if reverse else out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mode=self.mode, mean=self.mean)
        return config


def channel_mean(images: np.ndarray | tf.data.Dataset) -> np.ndarray:
    """Per-channel mean of ``images``: a NumPy array ``[N, H, W, C]`` or a ``tf.data`` dataset
    of images or ``(images, labels)`` batches, in the units they are given in."""
    if isinstance(images, tf.data.Dataset):
        total, count = None, 0
        for batch in images:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x = tf.cast(tf.reshape(x, [-1, x.shape[-1]]), tf.float64)
            s = tf.reduce_sum(x, axis=0).numpy()
            total = s if total is None else total + s
            count += int(x.shape[0])
        if not count:
            raise ValueError("channel_mean: the dataset is empty.")
        return (total / count).astype(np.float32)
    images = np.asarray(images)
    if images.ndim < 2 or images.size == 0:
        raise ValueError(f"channel_mean: expected images [N, H, W, C], got shape {images.shape}.")
    flat = images.reshape(-1, images.shape[-1])
    return flat.mean(axis=0, dtype=np.float64).astype(np.float32)
