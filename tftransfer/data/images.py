"""Decoding image files to RGB uint8 and resizing them once, for storage.

Contract:
- ``decode_rgb(data)``: any format Pillow reads, found from the bytes (a PNG named .jpg
  decodes); greyscale is replicated to 3 channels, CMYK / palette / alpha images are
  converted to RGB. Raises ``UndecodableImageError`` when the bytes are not an image.
- ``resized_shape(h, w, size, keep_aspect)``: ``(size, size)`` when the aspect ratio is
  ignored; otherwise the shorter side becomes ``size`` and the longer one
  ``round(long * size / short)``.
- ``resize_uint8``: bilinear resize (antialiased when shrinking) to that shape, rounded and
  clipped back to uint8.
"""
import io

import numpy as np
import tensorflow as tf
from PIL import Image


class UndecodableImageError(ValueError):
    """The bytes of a file could not be decoded as an image."""


def decode_rgb(data):
    """Returns the image in ``data`` (bytes) as an HxWx3 uint8 array."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode != "RGB":
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8)
    except Exception as err:  # Pillow raises many types for truncated or foreign bytes.
        raise UndecodableImageError(f"{type(err).__name__}: {err}") from err


def resized_shape(height, width, size, keep_aspect):
    """Target (height, width): ``(size, size)``, or shorter side ``size`` keeping the aspect."""
    if not keep_aspect:
        return size, size
    if height <= width:
        return size, max(1, int(round(width * size / height)))
    return max(1, int(round(height * size / width))), size


def resize_uint8(image, size, keep_aspect):
    """Resizes an HxWx3 uint8 array to ``resized_shape(...)``; returns uint8."""
    target = resized_shape(image.shape[0], image.shape[1], size, keep_aspect)
    if tuple(image.shape[:2]) == target:
        return image
    out = tf.image.resize(image, target, method="bilinear", antialias=True)
    return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def load_resized(data, size, keep_aspect):
    """``decode_rgb`` then ``resize_uint8``: the form in which images are stored."""
    return resize_uint8(decode_rgb(data), size, keep_aspect)
