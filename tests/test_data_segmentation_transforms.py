"""The joint image/mask training transforms against a NumPy composition written from the
formulas of ``tftransfer.data.segmentation_transforms`` (bilinear and nearest resize with
half-pixel centres, bottom/right padding, crop, jitter of the image pixels, mirror); the
draws are taken from TensorFlow's stateless primitives with the documented seed split."""
import numpy as np
import tensorflow as tf

from tftransfer.data import segmentation_transforms as T

LUMA = np.array([0.299, 0.587, 0.114])


def np_axis_bilinear(n_in, n_out):
    """Rows (lower, upper) and weight of the upper row, half-pixel centres, float32."""
    x = ((np.arange(n_out, dtype=np.float32) + np.float32(0.5))
         * (np.float32(n_in) / np.float32(n_out)) - np.float32(0.5))
    floor = np.floor(x)
    lower = np.maximum(floor, 0).astype(int)
    upper = np.minimum(floor + 1, n_in - 1).astype(int)
    return lower, upper, (x - floor).astype(np.float64)


def np_bilinear(image, out_h, out_w):
    image = image.astype(np.float64)
    lo, hi, fy = np_axis_bilinear(image.shape[0], out_h)
    rows = image[lo] * (1 - fy)[:, None, None] + image[hi] * fy[:, None, None]
    lo, hi, fx = np_axis_bilinear(image.shape[1], out_w)
    return rows[:, lo] * (1 - fx)[None, :, None] + rows[:, hi] * fx[None, :, None]


def np_nearest(mask, out_h, out_w):
    def index(n_in, n_out):
        x = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * (
            np.float32(n_in) / np.float32(n_out))
        return np.minimum(np.floor(x), n_in - 1).astype(int)
    return mask[index(mask.shape[0], out_h)][:, index(mask.shape[1], out_w)]


def np_jitter(image, inside, delta, saturation, contrast, fill):
    """Brightness, saturation, contrast around the mean of the ``inside`` pixels, clip;
    the pixels outside become ``fill``."""
    x = image + delta
    grey = x @ LUMA
    x = grey[..., None] + saturation * (x - grey[..., None])
    mean = x[inside].mean(axis=0)
    x = np.clip(mean + contrast * (x - mean), 0, 255)
    x[~inside] = fill
    return x


def draws(seed, scale, jitter=True):
    """The documented draws: seed split in 4 (scale, crop, mirror, jitter)."""
    seeds = tf.random.experimental.stateless_split(tf.constant(seed, tf.int64), 4)
    out = {"crop_seeds": tf.random.experimental.stateless_split(seeds[1], 2),
           "flip": bool(tf.random.stateless_uniform([], seeds[2]) < 0.5)}
    if scale:
        out["s"] = np.float32(tf.random.stateless_uniform([], seeds[0], *scale).numpy())
    if jitter:
        j = tf.random.experimental.stateless_split(seeds[3], 3)
        out["jitter"] = (tf.random.stateless_uniform([], j[0], -32.0, 32.0).numpy(),
                         tf.random.stateless_uniform([], j[1], 0.5, 1.5).numpy(),
                         tf.random.stateless_uniform([], j[2], 0.5, 1.5).numpy())
    return out


def np_transform(image, mask, seed, crop, scale=None, mirror=True, color_jitter=False,
                 ignore=255, fill=(0.0, 0.0, 0.0)):
    d = draws(seed, scale, color_jitter)
    h, w = image.shape[:2]
    image = image.astype(np.float64)
    if scale:
        out_h = max(1, int(np.round(np.float32(h) * d["s"])))
        out_w = max(1, int(np.round(np.float32(w) * d["s"])))
        image, mask = np_bilinear(image, out_h, out_w), np_nearest(mask, out_h, out_w)
    h, w = image.shape[:2]
    big_h, big_w = max(h, crop[0]), max(w, crop[1])
    padded = np.empty((big_h, big_w, 3))
    padded[:] = np.asarray(fill, np.float64)
    padded[:h, :w] = image
    padded_mask = np.full((big_h, big_w), ignore, np.int64)
    padded_mask[:h, :w] = mask
    top = int(tf.random.stateless_uniform([], d["crop_seeds"][0], 0, big_h - crop[0] + 1,
                                          dtype=tf.int32))
    left = int(tf.random.stateless_uniform([], d["crop_seeds"][1], 0, big_w - crop[1] + 1,
                                           dtype=tf.int32))
    image = padded[top:top + crop[0], left:left + crop[1]]
    mask = padded_mask[top:top + crop[0], left:left + crop[1]]
    if color_jitter:
        inside = np.zeros((big_h, big_w), bool)
        inside[:h, :w] = True
        image = np_jitter(image, inside[top:top + crop[0], left:left + crop[1]], *d["jitter"],
                          fill)
    if mirror and d["flip"]:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return image, mask


class SegmentationTransformsTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.image = rng.integers(0, 256, (7, 9, 3)).astype(np.uint8)
        self.mask = rng.integers(0, 5, (7, 9)).astype(np.uint8)
        self.mask[0, :3] = 255

    def test_matches_numpy_composition(self):
        fill = (10.0, 20.0, 30.0)
        for seed in ([0, 0], [0, 1], [3, 7], [5, 11], [9, 2], [1, 13]):
            for crop, scale, jitter in (((5, 6), None, False), ((8, 12), (0.5, 2.0), False),
                                        ((6, 6), (0.5, 2.0), True), ((4, 10), (1.5, 2.0), True),
                                        ((10, 12), None, True)):
                image, mask = T.train_transform(self.image, self.mask, seed, crop, scale,
                                                True, jitter, 255, fill)
                want_image, want_mask = np_transform(self.image, self.mask, seed, crop, scale,
                                                     True, jitter, 255, fill)
                self.assertEqual(image.dtype, tf.float32)
                self.assertEqual(mask.dtype, tf.int32)
                self.assertAllClose(image, want_image, atol=2e-3, msg=f"{seed} {crop} {scale}")
                self.assertAllEqual(mask, want_mask, msg=f"{seed} {crop} {scale}")

    def test_padding_is_fill_and_ignore_at_bottom_right(self):
        image, mask = T.train_transform(self.image[:3, :4], self.mask[:3, :4], [0, 4], (5, 6),
                                        mirror=False, ignore_label=200, fill=(1.0, 2.0, 3.0))
        self.assertAllEqual(image[:3, :4], self.image[:3, :4].astype(np.float32))
        self.assertAllEqual(mask[:3, :4], self.mask[:3, :4])
        self.assertAllEqual(image[3:], np.broadcast_to([1.0, 2.0, 3.0], (2, 6, 3)))
        self.assertAllEqual(image[:, 4:], np.broadcast_to([1.0, 2.0, 3.0], (5, 2, 3)))
        self.assertAllEqual(mask[3:], np.full((2, 6), 200))
        self.assertAllEqual(mask[:, 4:], np.full((5, 2), 200))

    def test_scale_never_invents_labels(self):
        labels = set(np.unique(self.mask).tolist())
        for i in range(10):
            _, mask = T.train_transform(self.image, self.mask, [i, 1], (16, 16), (0.3, 3.0))
            self.assertContainsSubset(set(np.unique(mask.numpy()).tolist()), labels | {255})

    def test_switching_mirror_or_jitter_off_changes_no_other_draw(self):
        for i in range(6):
            seed = [i, 2]
            base, base_mask = T.train_transform(self.image, self.mask, seed, (5, 5), (0.7, 1.6),
                                                mirror=False)
            mirrored, mirrored_mask = T.train_transform(self.image, self.mask, seed, (5, 5),
                                                        (0.7, 1.6), mirror=True)
            flip = draws(seed, None, False)["flip"]
            want = base.numpy()[:, ::-1] if flip else base.numpy()
            self.assertAllEqual(mirrored, want)
            self.assertAllEqual(mirrored_mask,
                                base_mask.numpy()[:, ::-1] if flip else base_mask.numpy())
            _, jittered_mask = T.train_transform(self.image, self.mask, seed, (5, 5),
                                                 (0.7, 1.6), mirror=False, color_jitter=True)
            self.assertAllEqual(jittered_mask, base_mask)

    def test_same_seed_same_result_other_seed_other_result(self):
        first = T.train_transform(self.image, self.mask, [1, 2], (6, 6), (0.5, 2.0))
        again = T.train_transform(self.image, self.mask, [1, 2], (6, 6), (0.5, 2.0))
        other = T.train_transform(self.image, self.mask, [1, 3], (6, 6), (0.5, 2.0))
        self.assertAllEqual(first[0], again[0])
        self.assertNotAllClose(first[0], other[0])

    def test_bad_arguments_are_refused(self):
        with self.assertRaisesRegex(ValueError, "crop_size must be a positive int"):
            T.train_transform(self.image, self.mask, [0, 0], (0, 4))
        with self.assertRaisesRegex(ValueError, r"0 < min <= max, e.g. \(0.5, 2.0\)"):
            T.train_transform(self.image, self.mask, [0, 0], 4, scale=(2.0, 0.5))


if __name__ == "__main__":
    tf.test.main()
