"""tftransfer.models.preprocessing: each mode against its formula written in NumPy."""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.models.preprocessing import MODES, Preprocess, channel_mean, preprocess

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (2, 4, 5, 3)).astype("float32")
MEAN = np.array([100.0, 110.0, 120.0], "float32")


def numpy_reference(x, mode, mean=None):
    """The formulas of the module docstring, in NumPy."""
    if mode == "caffe":
        m = np.array([123.68, 116.779, 103.939]) if mean is None else mean
        return (x - m)[..., ::-1]
    if mode == "torch":
        m = np.array([0.485, 0.456, 0.406]) if mean is None else mean / 255.0
        return (x / 255.0 - m) / np.array([0.229, 0.224, 0.225])
    if mode == "tf":
        return x / 127.5 - 1.0 if mean is None else (x - mean) / 127.5
    if mode == "unit":
        return x / 255.0 if mean is None else (x - mean) / 255.0
    if mode == "raw":
        return x if mean is None else x - mean
    return x - mean


class PreprocessTest(tf.test.TestCase):

    def test_modes_match_numpy(self):
        for mode in MODES:
            for mean in ((None, MEAN) if mode != "dataset_mean" else (MEAN,)):
                expected = numpy_reference(IMAGES.astype(np.float64), mode, mean)
                with self.subTest(mode=mode, mean=mean is not None):
                    self.assertAllClose(preprocess(IMAGES, mode, mean), expected, rtol=1e-5,
                                        atol=1e-4)
                    layer = Preprocess(mode, mean)
                    self.assertAllClose(layer(IMAGES), expected, rtol=1e-5, atol=1e-4)
                    clone = Preprocess.from_config(layer.get_config())
                    self.assertAllClose(clone(IMAGES), expected, rtol=1e-5, atol=1e-4)

    def test_centred_images_finish_with_zero_mean(self):
        # A pipeline that already subtracted the dataset mean (tftransfer.data) finishes with
        # mean=0: the same result as subtracting the mean here.
        for mode in MODES:
            self.assertAllClose(preprocess(IMAGES - MEAN, mode, mean=0.0),
                                preprocess(IMAGES, mode, mean=MEAN), rtol=1e-5, atol=1e-4)

    def test_caffe_is_bgr(self):
        pixel = np.array([[[[255.0, 0.0, 0.0]]]], "float32")  # pure red
        out = preprocess(pixel, "caffe").numpy().reshape(-1)
        self.assertAllClose(out, [-103.939, -116.779, 255.0 - 123.68])

    def test_works_in_tf_data_and_on_uint8(self):
        data = tf.data.Dataset.from_tensor_slices(IMAGES.astype("uint8")).batch(2)
        out = next(iter(data.map(lambda x: preprocess(x, "unit"))))
        self.assertAllClose(out, IMAGES.astype("uint8") / 255.0, rtol=1e-6)

    def test_grey_images(self):
        grey = IMAGES[..., :1]
        self.assertAllClose(preprocess(grey, "unit"), grey / 255.0, rtol=1e-6)
        with self.assertRaisesRegex(ValueError, "3-channel"):
            preprocess(grey, "caffe")

    def test_channel_mean(self):
        expected = IMAGES.reshape(-1, 3).astype(np.float64).mean(axis=0)
        self.assertAllClose(channel_mean(IMAGES), expected, rtol=1e-6)
        data = tf.data.Dataset.from_tensor_slices((IMAGES, np.zeros(2))).batch(1)
        self.assertAllClose(channel_mean(data), expected, rtol=1e-6)

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "Unknown preprocessing mode"):
            preprocess(IMAGES, "inception")
        with self.assertRaisesRegex(ValueError, "needs `mean`"):
            preprocess(IMAGES, "dataset_mean")
        with self.assertRaisesRegex(ValueError, "needs `mean`"):
            Preprocess("dataset_mean")
        with self.assertRaisesRegex(ValueError, "1 or 3 entries"):
            preprocess(IMAGES, "unit", mean=[1.0, 2.0])
        self.assertIsInstance(Preprocess("tf"), keras.layers.Layer)
