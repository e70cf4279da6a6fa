"""The paper's train and test transforms on stored (already resized) uint8 images.

Train, per image, with stateless randomness from a per-example ``seed`` (shape [2]):
0. optionally (``pad=p > 0``, off by default as in the paper) ``p`` zero pixels added on
   each side, so that the crop below may shift the image by up to ``p`` pixels;
1. random ``crop x crop`` window, offsets uniform in ``[0, H - crop] x [0, W - crop]``;
2. horizontal mirror with probability 1/2 (``mirror=True``, the default, as in the paper);
3. colour jitter ("blur" in the authors' code), in this order, on pixel values 0..255:
   brightness ``x + d``, ``d ~ U[-brightness, brightness]``;
   saturation ``g + s (x - g)``, ``g = 0.299 R + 0.587 G + 0.114 B``, ``s ~ U[saturation]``;
   contrast ``m + c (x - m)``, ``m`` = per-channel mean of the crop, ``c ~ U[contrast]``;
   then clipped to [0, 255] (``jitter=True``, the default; Li et al. 2018, Section 4.1);
4. subtract the per-channel mean (of the target training set, or ImageNet's).
Cropping first only saves work: mirror and crop commute in distribution, and only the
contrast's reference mean ``m`` differs (crop instead of the whole image).

Speed: ``train_transform`` runs per example (in a parallel ``Dataset.map``, before
batching) and steps 3-4 run as one XLA-fused pass over the crop's pixels (uint8 in,
float32 out) in the elementwise form of ``apply_jitter``: the same values as the
step-by-step formula up to float32 rounding (a few 1e-5 on 0..255 pixels; without jitter,
exactly ``float(x) - mean``).

Test: subtract the mean, then the central crop (offsets ``(H - crop) // 2``,
``(W - crop) // 2``), or 10 crops: top-left, top-right, bottom-left, bottom-right,
centre, then the same 5 mirrored, stacked as [10, crop, crop, 3].
"""
import dataclasses

import tensorflow as tf

# ILSVRC-2012 per-channel RGB mean on 0..255 pixels (the VGG / TF-slim constants).
IMAGENET_MEAN = (123.68, 116.779, 103.939)
_LUMA = (0.299, 0.587, 0.114)


@dataclasses.dataclass(frozen=True)
class JitterRanges:
    """Colour-jitter ranges: brightness delta bound (pixel units), saturation/contrast factors."""
    brightness: float = 32.0
    saturation: tuple = (0.5, 1.5)
    contrast: tuple = (0.5, 1.5)


def sample_jitter(seed, ranges=JitterRanges()):
    """Draws ``[delta, saturation, contrast]`` (float32 [3]) from the ranges; seed shape [2]."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    return tf.stack([
        tf.random.stateless_uniform([], seeds[0], -ranges.brightness, ranges.brightness),
        tf.random.stateless_uniform([], seeds[1], *ranges.saturation),
        tf.random.stateless_uniform([], seeds[2], *ranges.contrast)])


def apply_jitter(images, params):
    """Brightness, saturation, contrast, clip (module docstring) on float [..., H, W, 3];
    ``params[..., :]`` = (delta, saturation, contrast), one triple per image.

    The three steps are affine in the pixel ``x`` (luma weights sum to 1), so they run as
    ``clip(c s x + c (1 - s) g + c d + (1 - c) m, 0, 255)`` with ``g = luma . x`` per pixel
    and ``m = s mu + (1 - s) luma . mu + d`` (``mu``: per-channel mean of ``x``; ``m``: the
    per-channel mean of the brightened, saturated image): elementwise work only, equal to
    the step-by-step formula up to float32 rounding.
    """
    delta, saturation, contrast = (params[..., i, None] for i in range(3))  # [..., 1]
    mu = tf.reduce_mean(images, axis=[-3, -2])  # [..., 3]
    mean = saturation * mu + (1.0 - saturation) * _luma(mu) + delta
    bias = contrast * delta + (1.0 - contrast) * mean
    scale = (contrast * saturation)[..., None, None, :]
    grey_scale = (contrast * (1.0 - saturation))[..., None, None, :]
    images = scale * images + grey_scale * _luma(images) + bias[..., None, None, :]
    return tf.clip_by_value(images, 0.0, 255.0)


def _luma(x):
    """``0.299 R + 0.587 G + 0.114 B`` of ``[..., 3]``, shape ``[..., 1]``."""
    return x[..., 0:1] * _LUMA[0] + x[..., 1:2] * _LUMA[1] + x[..., 2:3] * _LUMA[2]


@tf.function(jit_compile=True)
def _jitter_and_center(images, params, mean):
    """Steps 3-4 as one fused (XLA) loop over the pixels: uint8 in, float32 out."""
    return apply_jitter(tf.cast(images, tf.float32), params) - mean


@tf.function(jit_compile=True)
def _center(images, mean):
    """Step 4 alone, fused (XLA): uint8 in, float32 out, exactly ``float(x) - mean``."""
    return tf.cast(images, tf.float32) - mean


def random_crop_offsets(seed, height, width, crop):
    """Offsets ``(top, left)`` uniform in ``[0, height - crop] x [0, width - crop]``."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    top = tf.random.stateless_uniform([], seeds[0], 0, height - crop + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[1], 0, width - crop + 1, dtype=tf.int32)
    return top, left


def zero_pad(image, pad):
    """Step 0: ``pad`` zero pixels on each side of ``[H, W, C]`` (``pad=0``: unchanged)."""
    if not pad:
        return image
    if pad < 0:
        raise ValueError(f"pad={pad} is negative: give the zero pixels per side (0: none).")
    return tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])


def random_crop_mirror(image, seed, crop, mirror=True):
    """Steps 1-2 on one stored image: a random ``crop x crop`` window, mirrored w.p. 1/2
    (never with ``mirror=False``; the draws are the same, so crops do not change)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    shape = tf.shape(image)
    top, left = random_crop_offsets(seeds[0], shape[0], shape[1], crop)
    image = image[top:top + crop, left:left + crop]
    if mirror:
        flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    return tf.ensure_shape(image, [crop, crop, image.shape[-1]])


def finish_batch(images, params, mean, jitter=True):
    """Steps 3-4 on uint8 ``[..., h, w, 3]`` (one image or a batch; ``params`` [..., 3]) ->
    float32, compiled with XLA into one pass over the pixels (a fixed ``h, w``, the crop,
    compiles once)."""
    mean = tf.constant(mean, tf.float32)
    if jitter:
        return _jitter_and_center(images, tf.convert_to_tensor(params, tf.float32), mean)
    return _center(images, mean)


def train_transform(image, seed, mean, crop, ranges=JitterRanges(), jitter=True,
                    mirror=True, pad=0):
    """All train steps on one stored uint8 image ``[H, W, 3]`` (any size, at least
    ``crop - 2 pad``) -> float32 ``[crop, crop, 3]``, a pure function of ``seed`` ([2]).

    The contract every training pipeline follows (``augment_batches``, and
    ``tftransfer.training.data.stateless_batches`` with the seed ``[seed, p]`` of stream
    position ``p``): ``seed`` splits (``stateless_split``) into a crop seed, for
    ``random_crop_mirror`` (offsets, then mirror), and a jitter seed, for
    ``sample_jitter``; the crop is jittered (``jitter``) and centred by ``finish_batch``.
    Switching ``mirror`` or ``jitter`` off changes no other draw. Run it per example in a
    parallel ``Dataset.map`` and batch after it: the crop then stays in cache through
    the fused jitter (several times faster than jittering whole batches).
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = random_crop_mirror(zero_pad(image, pad), seeds[0], crop, mirror)
    return finish_batch(image, sample_jitter(seeds[1], ranges), mean, jitter)


def augment_batches(dataset, batch_size, crop, mean, seed=None, ranges=JitterRanges(),
                    jitter=True, deterministic=None, mirror=True, pad=0):
    """``(uint8 image, label)`` examples -> augmented float32 batches (full batches only).

    Each example gets ``train_transform`` (zero padding of ``pad`` pixels per side, crop,
    mirror, jitter, mean subtraction) with its own seed, the next pair of
    ``Dataset.random(seed)``, in a parallel map; then batches and prefetch.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def per_example(example, example_seed):
        image, label = example
        return (train_transform(image, example_seed, mean, crop, ranges, jitter, mirror, pad),
                label)

    deterministic = seed is not None if deterministic is None else deterministic
    ds = tf.data.Dataset.zip((dataset, seeds)).map(
        per_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def center_crop(image, crop):
    """The central ``crop x crop`` window, offsets ``(H - crop) // 2, (W - crop) // 2``."""
    shape = tf.shape(image)
    top, left = (shape[0] - crop) // 2, (shape[1] - crop) // 2
    return image[top:top + crop, left:left + crop]


def ten_crops(image, crop):
    """[10, crop, crop, C]: 4 corners and centre, then the same 5 mirrored."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    corners = [image[:crop, :crop], image[:crop, w - crop:], image[h - crop:, :crop],
               image[h - crop:, w - crop:], center_crop(image, crop)]
    five = tf.stack(corners)
    return tf.concat([five, tf.reverse(five, axis=[2])], axis=0)


def test_transform(image, mean, crop, crops="center"):
    """Stored uint8 image -> float32 central crop [crop, crop, 3] or ten crops [10, ...]."""
    image = tf.cast(image, tf.float32) - tf.constant(mean, tf.float32)
    if crops == "center":
        return tf.ensure_shape(center_crop(image, crop), [crop, crop, 3])
    if crops == "ten":
        return tf.ensure_shape(ten_crops(image, crop), [10, crop, crop, 3])
    raise ValueError(f"crops must be 'center' or 'ten', got {crops!r}.")
