"""The fused training transform (crop, mirror, colour jitter, clip, mean) against a NumPy
reference written from the formula of ``tftransfer.data.preprocessing``, on random
parameters and on the in-memory driver stream (``stateless_batches``); the outputs stay in
their documented ranges."""
import numpy as np
import tensorflow as tf

from tftransfer.data import preprocessing
from tftransfer.training import data as data_lib

LUMA = np.array([0.299, 0.587, 0.114])
# float32 rounding of pixels up to 255 (ulp 1.5e-5): a few ulps of the fused form.
ATOL = 1e-4
stateless_split = tf.random.experimental.stateless_split


def numpy_jitter(x, delta, saturation, contrast):
    """Step 3 step by step on float64 [h, w, 3]: brightness, saturation, contrast with the
    crop's per-channel mean, clip."""
    x = x + delta
    grey = (x * LUMA).sum(-1, keepdims=True)
    x = grey + saturation * (x - grey)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return np.clip(mean + contrast * (x - mean), 0, 255)


def documented_draws(seed, height, width, crop, ranges=preprocessing.JitterRanges()):
    """``(top, left, flip, (delta, saturation, contrast))`` of ``seed`` by the documented
    split: crop seed -> (offsets seed -> (top, left), mirror seed), jitter seed -> 3."""
    crop_seed, jitter_seed = stateless_split(seed, 2)
    offsets_seed, mirror_seed = stateless_split(crop_seed, 2)
    top_seed, left_seed = stateless_split(offsets_seed, 2)
    top = tf.random.stateless_uniform([], top_seed, 0, height - crop + 1, tf.int32)
    left = tf.random.stateless_uniform([], left_seed, 0, width - crop + 1, tf.int32)
    flip = tf.random.stateless_uniform([], mirror_seed) < 0.5
    j = stateless_split(jitter_seed, 3)
    params = (tf.random.stateless_uniform([], j[0], -ranges.brightness, ranges.brightness),
              tf.random.stateless_uniform([], j[1], *ranges.saturation),
              tf.random.stateless_uniform([], j[2], *ranges.contrast))
    return int(top), int(left), bool(flip), tuple(float(p) for p in params)


def numpy_transform(image, seed, mean, crop, jitter=True, mirror=True):
    """The whole train transform in NumPy (float64) from the documented draws."""
    top, left, flip, params = documented_draws(seed, image.shape[0], image.shape[1], crop)
    x = image[top:top + crop, left:left + crop].astype(np.float64)
    if mirror and flip:
        x = x[:, ::-1]
    if jitter:
        x = numpy_jitter(x, *params)
    return x - np.asarray(mean, np.float64)


class FusedJitterTest(tf.test.TestCase):

    def test_batched_jitter_matches_numpy_on_random_parameters(self):
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (6, 7, 9, 3)).astype(np.uint8)
        params = np.stack([rng.uniform(-32, 32, 6), rng.uniform(0.5, 1.5, 6),
                           rng.uniform(0.5, 1.5, 6)], 1).astype(np.float32)
        mean = (120.0, 115.0, 100.0)
        out = preprocessing.finish_batch(x, params, mean).numpy()
        plain = preprocessing.apply_jitter(tf.cast(x, tf.float32), params).numpy()
        for i in range(6):
            expected = numpy_jitter(x[i].astype(np.float64), *params[i].astype(np.float64))
            self.assertAllClose(out[i], expected - np.array(mean), atol=ATOL, rtol=0)
            self.assertAllClose(plain[i], expected, atol=ATOL, rtol=0)
        self.assertGreater((plain == 0).sum() + (plain == 255).sum(), 0)  # clipping met

    def test_one_image_or_a_batch_give_the_same_bits(self):
        rng = np.random.default_rng(1)
        x = rng.integers(0, 256, (4, 8, 8, 3)).astype(np.uint8)
        params = np.array([[5.0, 0.7, 1.2], [-30.0, 1.4, 0.6], [0.0, 1.0, 1.0],
                           [31.0, 0.5, 1.5]], np.float32)
        batch = preprocessing.finish_batch(x, params, preprocessing.IMAGENET_MEAN).numpy()
        for i in range(4):
            one = preprocessing.finish_batch(x[i], params[i], preprocessing.IMAGENET_MEAN)
            self.assertAllEqual(one.numpy(), batch[i])

    def test_without_jitter_exactly_the_pixels_minus_the_mean(self):
        x = np.random.default_rng(2).integers(0, 256, (5, 6, 3)).astype(np.uint8)
        mean = (123.68, 116.779, 103.939)
        out = preprocessing.finish_batch(x, None, mean, jitter=False).numpy()
        self.assertAllEqual(out, x.astype(np.float32) - np.array(mean, np.float32))


class TrainTransformReferenceTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.image = np.random.default_rng(3).integers(0, 256, (11, 13, 3)).astype(np.uint8)
        self.mean = (100.0, 110.0, 120.0)

    def test_train_transform_matches_numpy_from_the_documented_draws(self):
        for s in range(12):
            seed = tf.constant([s, 9], tf.int64)
            for jitter in (True, False):
                out = preprocessing.train_transform(self.image, seed, self.mean, 7,
                                                    jitter=jitter).numpy()
                expected = numpy_transform(self.image, seed, self.mean, 7, jitter)
                if jitter:
                    self.assertAllClose(out, expected, atol=ATOL, rtol=0)
                else:  # exact: a float32 pixel minus a float32 mean
                    self.assertAllEqual(out, expected.astype(np.float32))

    def test_outputs_and_draws_stay_in_their_ranges(self):
        ranges, crop, n = preprocessing.JitterRanges(), 7, 200
        h, w = self.image.shape[:2]
        mean = np.array(self.mean)
        tops, lefts, flips = set(), set(), 0
        for s in range(n):
            seed = tf.constant([s, 4], tf.int64)
            top, left, flip, (delta, saturation, contrast) = documented_draws(seed, h, w, crop)
            self.assertBetween(delta, -ranges.brightness, ranges.brightness)
            self.assertBetween(saturation, *ranges.saturation)
            self.assertBetween(contrast, *ranges.contrast)
            tops.add(top)
            lefts.add(left)
            flips += flip
            out = preprocessing.train_transform(self.image, seed, self.mean, crop).numpy()
            self.assertTrue(np.all(out >= -mean - 1e-4) and np.all(out <= 255 - mean + 1e-4))
            plain = preprocessing.train_transform(self.image, seed, self.mean, crop,
                                                  jitter=False).numpy() + mean
            window = self.image[top:top + crop, left:left + crop]
            self.assertAllClose(plain, window[:, ::-1] if flip else window, atol=1e-4)
        self.assertEqual(tops, set(range(h - crop + 1)))  # every offset, both ends
        self.assertEqual(lefts, set(range(w - crop + 1)))
        self.assertBetween(flips / n, 0.35, 0.65)  # binomial(200, 1/2): 5 sigma


class StatelessBatchesReferenceTest(tf.test.TestCase):
    """The in-memory driver stream: example at stream position p gets the seed
    ``[seed, p]`` (labels are the image indices here, so the order is read off them)."""

    def _check(self, images, jitter, mirror=True, batches=3, batch_size=4, seed=6, crop=8):
        stream = data_lib.stateless_batches(images, np.arange(len(images)), batch_size,
                                            seed, crop, jitter, mirror=mirror)
        for b, (x, y) in enumerate(stream.take(batches)):
            for i, (out, index) in enumerate(zip(x.numpy(), y.numpy())):
                seed_p = tf.constant([seed, b * batch_size + i], tf.int64)
                expected = numpy_transform(images[index], seed_p, np.zeros(images.shape[-1]), crop,
                                           jitter and images.shape[-1] == 3, mirror)
                if jitter:
                    self.assertAllClose(out, expected, atol=ATOL, rtol=0)
                else:
                    self.assertAllEqual(out, expected.astype(np.float32))

    def test_rgb_with_jitter_is_the_formula_to_float32_rounding(self):
        rng = np.random.default_rng(4)
        self._check(rng.integers(0, 256, (10, 12, 12, 3)).astype(np.uint8), jitter=True)

    def test_rgb_without_jitter_and_grey_are_exact(self):
        rng = np.random.default_rng(5)
        self._check(rng.integers(0, 256, (10, 12, 12, 3)).astype(np.uint8), jitter=False)
        self._check(rng.integers(0, 256, (10, 12, 12, 1)).astype(np.uint8), jitter=False)
        self._check(rng.integers(0, 256, (10, 12, 12, 3)).astype(np.uint8), jitter=False,
                    mirror=False)


if __name__ == "__main__":
    tf.test.main()
