"""Joint training transforms of an image and its label mask (semantic segmentation).

One example, ``image`` ``[H, W, 3]`` (uint8 or float, pixel values 0..255) and ``mask``
``[H, W]`` (class indices, ``ignore_label`` = not counted), with stateless randomness from
a per-example ``seed`` (int64 ``[2]``) split in four (scale, crop, mirror, jitter), so
switching one transform off changes no other draw. In this order:

1. random scale (``scale=(lo, hi)``; None: skipped): ``s ~ U[lo, hi]``, new size
   ``H' = max(1, round(H s))``, ``W' = max(1, round(W s))`` (float32, round half to even);
   the image resized bilinearly (half-pixel centres, no antialiasing:
   ``x = (i + 1/2) H / H' - 1/2``, linear between rows ``max(floor(x), 0)`` and
   ``min(floor(x) + 1, H - 1)``, the same along columns), the mask by nearest neighbour
   ``mask'[i, j] = mask[min(floor((i + 1/2) H / H'), H - 1), min(floor((j + 1/2) W / W'), W - 1)]``;
2. padding to the crop size at the bottom and the right, to ``(max(H', h), max(W', w))``:
   the image with ``fill`` (a number or an RGB triple, e.g. the dataset mean, so that the
   padding is 0 after mean subtraction), the mask with ``ignore_label``;
3. random crop ``h x w``: ``top ~ U{0, ..., H'' - h}``, ``left ~ U{0, ..., W'' - w}``, the same
   window for the image and the mask;
4. colour jitter on the image only (``color_jitter=True``), on the crop's image pixels (not
   the padding, which stays ``fill``): brightness ``x + d``, ``d ~ U[-brightness,
   brightness]``; saturation ``g + s (x - g)``, ``g = 0.299 R + 0.587 G + 0.114 B``,
   ``s ~ U[saturation]``; contrast ``m + c (x - m)``, ``m`` the per-channel mean over the
   crop's image pixels, ``c ~ U[contrast]``; clipped to [0, 255] (the ranges and draws of
   :mod:`tftransfer.data.preprocessing`); on the crop rather than the whole scaled image,
   so its cost is the crop's, whatever the image size;
5. mirror (``mirror=True``): both flipped left-right with probability 1/2.

Result: image float32 ``[h, w, 3]`` (0..255, not mean-subtracted), mask int32 ``[h, w]``.
"""
import tensorflow as tf

from tftransfer.data import preprocessing

IGNORE_LABEL = 255
LUMA = (0.299, 0.587, 0.114)


def crop_hw(crop_size):
    """``(h, w)`` of a crop size given as one int (square) or a pair; both positive."""
    h, w = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if int(h) != h or int(w) != w or h < 1 or w < 1:
        raise ValueError(f"crop_size must be a positive int or (height, width), got "
                         f"{crop_size!r}.")
    return int(h), int(w)


def check_scale(scale):
    """``scale`` as ``(lo, hi)`` floats with ``0 < lo <= hi``, or None."""
    if scale is None:
        return None
    lo, hi = (float(s) for s in scale)
    if not 0 < lo <= hi:
        raise ValueError(f"scale must be (min, max) with 0 < min <= max, e.g. (0.5, 2.0), "
                         f"or None for no random scale; got {scale!r}.")
    return lo, hi


def split_seed(seed):
    """The four per-transform seeds (``[4, 2]``): scale, crop, mirror, jitter."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)


def scaled_size(height, width, factor):
    """``(max(1, round(H s)), max(1, round(W s)))`` as int32 scalars (float32 arithmetic)."""
    def one(side):
        return tf.maximum(1, tf.cast(tf.round(tf.cast(side, tf.float32) * factor), tf.int32))
    return one(height), one(width)


def random_scale(image, mask, seed, scale):
    """Step 1: ``image`` (float32) resized bilinearly and ``mask`` by nearest neighbour to
    the size scaled by ``s ~ U[scale]``; unchanged when ``scale`` is None."""
    image = tf.cast(image, tf.float32)
    if scale is None:
        return image, mask
    factor = tf.random.stateless_uniform([], seed, scale[0], scale[1])
    shape = tf.shape(image)
    size = tf.stack(scaled_size(shape[0], shape[1], factor))
    image = tf.image.resize(image, size, method="bilinear", antialias=False)
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    return image, mask


def pad_to(image, mask, height, width, fill=0.0, ignore_label=IGNORE_LABEL):
    """Step 2: pads ``image`` with ``fill`` and ``mask`` with ``ignore_label`` at the bottom
    and the right to at least ``height x width``."""
    shape = tf.shape(image)
    out_h, out_w = tf.maximum(shape[0], height), tf.maximum(shape[1], width)
    paddings = [[0, out_h - shape[0]], [0, out_w - shape[1]]]
    inside = ((tf.range(out_h)[:, None] < shape[0]) & (tf.range(out_w)[None, :] < shape[1]))
    fill = tf.broadcast_to(tf.constant(fill, tf.float32), [3])
    image = tf.where(inside[..., None], tf.pad(image, paddings + [[0, 0]]), fill)
    mask = tf.pad(mask, paddings, constant_values=tf.cast(ignore_label, mask.dtype))
    return image, mask


def crop_offsets(seed, height, width, crop_h, crop_w):
    """Step 3's ``(top, left)``, uniform in ``[0, height - crop_h] x [0, width - crop_w]``."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    top = tf.random.stateless_uniform([], seeds[0], 0, height - crop_h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[1], 0, width - crop_w + 1, dtype=tf.int32)
    return top, left


def random_crop(image, mask, seed, crop_h, crop_w):
    """Step 3: the same random ``crop_h x crop_w`` window of ``image`` and ``mask`` (both at
    least that large); returns them and the window's ``(top, left)``."""
    shape = tf.shape(image)
    top, left = crop_offsets(seed, shape[0], shape[1], crop_h, crop_w)
    return (image[top:top + crop_h, left:left + crop_w],
            mask[top:top + crop_h, left:left + crop_w], top, left)


def jitter_pixels(image, inside, params, fill=0.0):
    """Step 4 on float32 ``image [h, w, 3]`` where ``inside [h, w]`` (image pixels, not
    padding); ``params`` = (delta, saturation, contrast); the other pixels become ``fill``."""
    delta, saturation, contrast = params[0], params[1], params[2]
    x = image + delta
    grey = tf.tensordot(x, tf.constant(LUMA), axes=1)[..., None]
    x = grey + saturation * (x - grey)
    weight = tf.cast(inside, tf.float32)[..., None]
    mean = tf.reduce_sum(x * weight, axis=[0, 1]) / tf.maximum(tf.reduce_sum(weight), 1.0)
    x = tf.clip_by_value(mean + contrast * (x - mean), 0.0, 255.0)
    return tf.where(inside[..., None], x, tf.broadcast_to(tf.constant(fill, tf.float32), [3]))


def flip_draw(seed):
    """Step 5's draw: True (mirror) with probability 1/2."""
    return tf.random.stateless_uniform([], seed) < 0.5


def random_mirror(image, mask, seed):
    """Step 5: ``image`` and ``mask`` flipped left-right together with probability 1/2."""
    flip = flip_draw(seed)
    return (tf.where(flip, tf.reverse(image, axis=[1]), image),
            tf.where(flip, tf.reverse(mask, axis=[1]), mask))


def train_transform(image, mask, seed, crop_size, scale=None, mirror=True, color_jitter=False,
                    ignore_label=IGNORE_LABEL, fill=0.0, jitter=preprocessing.JitterRanges()):
    """Steps 1-5 (module docstring) on one example -> (float32 ``[h, w, 3]``, int32
    ``[h, w]``); ``seed`` int64 ``[2]``, ``jitter`` the colour-jitter ranges."""
    crop_h, crop_w = crop_hw(crop_size)
    scale = check_scale(scale)
    seeds = split_seed(seed)
    mask = tf.cast(mask, tf.int32)
    image, mask = random_scale(image, mask, seeds[0], scale)
    shape = tf.shape(image)
    image, mask = pad_to(image, mask, crop_h, crop_w, fill, ignore_label)
    image, mask, top, left = random_crop(image, mask, seeds[1], crop_h, crop_w)
    if color_jitter:
        inside = ((top + tf.range(crop_h))[:, None] < shape[0]) & (
            (left + tf.range(crop_w))[None, :] < shape[1])
        image = jitter_pixels(image, inside, preprocessing.sample_jitter(seeds[3], jitter),
                              fill)
    if mirror:
        image, mask = random_mirror(image, mask, seeds[2])
    return tf.ensure_shape(image, [crop_h, crop_w, 3]), tf.ensure_shape(mask, [crop_h, crop_w])
