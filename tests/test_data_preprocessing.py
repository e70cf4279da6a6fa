"""Decoding, storage resize and the train/test transforms, checked against NumPy."""
import os
import tempfile

import numpy as np
import tensorflow as tf
from PIL import Image

from tftransfer.data import images, preprocessing
from tests.fixtures import synthetic

LUMA = np.array([0.299, 0.587, 0.114])


def numpy_jitter(x, delta, sat, con):
    """Brightness, saturation, contrast, clip: written from the documented formulas."""
    x = x + delta
    grey = (x * LUMA).sum(-1, keepdims=True)
    x = grey + sat * (x - grey)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return np.clip(mean + con * (x - mean), 0, 255)


class DecodeTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.rng = np.random.default_rng(0)

    def _read(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return f.read()

    def test_grey_cmyk_and_png_named_jpg_become_rgb(self):
        for mode, fmt in (("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("RGBA", "PNG")):
            rgb = synthetic.write_image(os.path.join(self.dir, f"{mode}.jpg"), 13, 7, self.rng,
                                        mode, fmt)
            out = images.decode_rgb(self._read(f"{mode}.jpg"))
            self.assertEqual(out.shape, (13, 7, 3))
            self.assertEqual(out.dtype, np.uint8)
            if mode == "L":  # Grey is replicated: the three channels are equal.
                self.assertAllEqual(out[..., 0], out[..., 1])
                self.assertAllEqual(out[..., 0], out[..., 2])
            if fmt == "PNG":  # Lossless: exactly the pixels written.
                self.assertAllEqual(out, rgb)

    def test_corrupt_bytes_raise(self):
        synthetic.write_corrupt(os.path.join(self.dir, "bad.jpg"))
        with self.assertRaises(images.UndecodableImageError):
            images.decode_rgb(self._read("bad.jpg"))

    def test_resized_shape_formula(self):
        for h, w in ((300, 500), (500, 300), (256, 256), (37, 91)):
            self.assertEqual(images.resized_shape(h, w, 256, False), (256, 256))
            short, long_ = min(h, w), max(h, w)
            expected_long = int(round(long_ * 256 / short))
            expected = (256, expected_long) if h <= w else (expected_long, 256)
            self.assertEqual(images.resized_shape(h, w, 256, True), expected)

    def test_resize_uint8_shapes(self):
        x = synthetic.random_image(21, 35, self.rng)
        self.assertEqual(images.resize_uint8(x, 16, False).shape, (16, 16, 3))
        self.assertEqual(images.resize_uint8(x, 16, True).shape, (16, 27, 3))
        self.assertEqual(images.resize_uint8(x, 16, True).dtype, np.uint8)
        flat = np.full((20, 30, 3), 77, np.uint8)  # A constant image stays constant.
        self.assertAllEqual(images.resize_uint8(flat, 8, True), np.full((8, 12, 3), 77))
        Image.fromarray(x).save(os.path.join(self.dir, "a.png"))
        self.assertAllEqual(images.load_resized(self._read("a.png"), 16, False),
                            images.resize_uint8(x, 16, False))


class TestTransformTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.image = np.random.default_rng(1).integers(0, 256, (11, 14, 3)).astype(np.uint8)
        self.mean = (10.0, 20.0, 30.0)

    def test_center_crop_is_numpy_slice(self):
        out = preprocessing.test_transform(self.image, self.mean, 6, "center")
        self.assertEqual(out.dtype, tf.float32)
        # (11 - 6) // 2 = 2, (14 - 6) // 2 = 4.
        expected = self.image[2:8, 4:10].astype(np.float32) - np.array(self.mean)
        self.assertAllClose(out, expected)

    def test_ten_crops_are_numpy_slices(self):
        out = preprocessing.test_transform(self.image, self.mean, 6, "ten")
        self.assertEqual(out.shape, (10, 6, 6, 3))
        x = self.image.astype(np.float32) - np.array(self.mean)
        five = [x[0:6, 0:6], x[0:6, 8:14], x[5:11, 0:6], x[5:11, 8:14], x[2:8, 4:10]]
        expected = np.stack(five + [c[:, ::-1] for c in five])
        self.assertAllClose(out, expected)

    def test_bad_crops_argument(self):
        with self.assertRaisesRegex(ValueError, "center"):
            preprocessing.test_transform(self.image, self.mean, 6, "five")


class TrainTransformTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.image = np.random.default_rng(2).integers(0, 256, (9, 12, 3)).astype(np.uint8)
        self.mean = np.array([100.0, 110.0, 120.0])

    def _matching_windows(self, out, crop):
        """All (top, left, mirrored) whose window of the image equals ``out + mean``."""
        x = np.asarray(out) + self.mean
        found = []
        for top in range(self.image.shape[0] - crop + 1):
            for left in range(self.image.shape[1] - crop + 1):
                window = self.image[top:top + crop, left:left + crop].astype(np.float64)
                for mirrored, candidate in ((False, window), (True, window[:, ::-1])):
                    if np.allclose(x, candidate, atol=1e-3):
                        found.append((top, left, mirrored))
        return found

    def test_without_jitter_output_is_a_crop_or_its_mirror(self):
        seen = set()
        for s in range(40):
            out = preprocessing.train_transform(self.image, [s, 0], self.mean, 5, jitter=False)
            self.assertEqual(out.shape, (5, 5, 3))
            self.assertEqual(out.dtype, tf.float32)
            windows = self._matching_windows(out, 5)
            self.assertNotEmpty(windows)
            seen.update(windows)
        # Both mirror states and several offsets occur.
        self.assertEqual({m for _, _, m in seen}, {False, True})
        self.assertGreater(len({(t, l) for t, l, _ in seen}), 5)

    def test_same_seed_same_output(self):
        a = preprocessing.train_transform(self.image, [3, 4], self.mean, 5)
        b = preprocessing.train_transform(self.image, [3, 4], self.mean, 5)
        c = preprocessing.train_transform(self.image, [3, 5], self.mean, 5)
        self.assertAllEqual(a, b)
        self.assertNotAllClose(a, c)

    def test_jitter_parameters_stay_in_documented_ranges(self):
        ranges = preprocessing.JitterRanges()
        draws = np.array([preprocessing.sample_jitter([s, 1], ranges).numpy()
                          for s in range(300)])
        bounds = [(-ranges.brightness, ranges.brightness), ranges.saturation, ranges.contrast]
        for column, (lo, hi) in zip(draws.T, bounds):
            self.assertGreaterEqual(column.min(), lo)
            self.assertLessEqual(column.max(), hi)
            # The draws cover the range rather than a corner of it.
            self.assertLess(column.min(), lo + 0.2 * (hi - lo))
            self.assertGreater(column.max(), hi - 0.2 * (hi - lo))

    def test_apply_jitter_matches_numpy_formula(self):
        x = self.image.astype(np.float32)
        for delta, sat, con in ((20.0, 1.3, 0.7), (-32.0, 0.5, 1.5), (0.0, 1.0, 1.0)):
            out = preprocessing.apply_jitter(tf.constant(x), tf.constant([delta, sat, con]))
            self.assertAllClose(out, numpy_jitter(x.astype(np.float64), delta, sat, con),
                                atol=1e-3)

    def test_jittered_output_stays_in_pixel_range(self):
        for s in range(20):
            out = preprocessing.train_transform(self.image, [s, 7], self.mean, 5)
            x = np.asarray(out) + self.mean
            self.assertGreaterEqual(x.min(), -1e-4)
            self.assertLessEqual(x.max(), 255 + 1e-4)


if __name__ == "__main__":
    tf.test.main()
