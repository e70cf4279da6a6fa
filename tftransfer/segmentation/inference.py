"""Whole-image, sliding-window and multi-scale + flip inference of a segmentation network
(Li et al. 2018, Table 3: whole images for FCN, ResNet and DeepLab; 836x836 sliding crops and
multi-scale testing for PSPNet).

``model`` maps images ``[B, h, w, C]`` to per-pixel logits ``[B, h, w, K]`` of the same size
(TensorFlow backend, like the driver; the metrics and the schedule run on any backend).
All functions return class probabilities ``[B, H, W, K]`` (softmax), averaged as follows:

- :func:`sliding_window`: ``crop x crop`` windows at offsets ``0, stride, 2 stride, ...``
  along each axis, the last one flush with the border (an image smaller than the crop is
  zero-padded at the bottom and right, and the padding cut off again); each pixel gets the
  mean of the probabilities of the windows that cover it;
- :func:`multi_scale`: for each scale ``s``, the image is resized (bilinear) to
  ``round(s * H) x round(s * W)``, ``predict`` gives its probabilities, which are resized back
  to ``H x W`` (bilinear); with ``flip``, the mirrored image too, mirrored back; the mean over
  all of them.
"""
from typing import TYPE_CHECKING, Any, Callable, Sequence

import tensorflow as tf

if TYPE_CHECKING:
    import keras


def whole_image(model: "keras.Model", images: Any) -> tf.Tensor:
    """Softmax of ``model(images)``."""
    return tf.nn.softmax(tf.convert_to_tensor(model(images, training=False)), axis=-1)


def _offsets(length, crop, stride):
    if length <= crop:
        return [0]
    offsets = list(range(0, length - crop, stride))
    return offsets + [length - crop]


def sliding_window(model: "keras.Model", images: Any, crop: int,
                   stride: int) -> tf.Tensor:
    """Probabilities of ``images [B, H, W, C]`` from ``crop``-sized windows (module
    docstring)."""
    if not 0 < stride <= crop:
        raise ValueError(f"stride must be in 1..crop={crop}, got {stride}.")
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = int(images.shape[1]), int(images.shape[2])
    padded = tf.pad(images, [[0, 0], [0, max(0, crop - height)], [0, max(0, crop - width)],
                             [0, 0]])
    total = count = None
    full_h, full_w = int(padded.shape[1]), int(padded.shape[2])
    for top in _offsets(full_h, crop, stride):
        for left in _offsets(full_w, crop, stride):
            window = padded[:, top:top + crop, left:left + crop]
            probabilities = whole_image(model, window)
            pad = [[0, 0], [top, full_h - top - crop], [left, full_w - left - crop], [0, 0]]
            contribution = tf.pad(probabilities, pad)
            covered = tf.pad(tf.ones_like(probabilities[..., :1]), pad)
            total = contribution if total is None else total + contribution
            count = covered if count is None else count + covered
    return (total / count)[:, :height, :width]


def multi_scale(predict: Callable[[tf.Tensor], Any], images: Any,
                scales: Sequence[float] = (1.0,), flip: bool = False) -> tf.Tensor:
    """Mean probabilities over ``scales`` (and mirrors), ``predict(images) -> [B, h, w, K]``
    probabilities, e.g. ``lambda x: sliding_window(model, x, 836, 557)``."""
    images = tf.convert_to_tensor(images, tf.float32)
    size = (int(images.shape[1]), int(images.shape[2]))
    outputs = []
    for s in scales:
        scaled_size = (max(1, round(s * size[0])), max(1, round(s * size[1])))
        scaled = tf.image.resize(images, scaled_size, method="bilinear")
        variants = [(scaled, False)] + ([(tf.reverse(scaled, axis=[2]), True)] if flip else [])
        for x, mirrored in variants:
            probabilities = predict(x)
            if mirrored:
                probabilities = tf.reverse(probabilities, axis=[2])
            outputs.append(tf.image.resize(probabilities, size, method="bilinear"))
    return tf.add_n(outputs) / len(outputs)
