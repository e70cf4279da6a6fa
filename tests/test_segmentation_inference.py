"""Sliding-window and multi-scale + flip inference equal a NumPy composition of the same
model's outputs on a toy input."""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.segmentation import inference

K = 4


def toy_model(channels=2):
    """Fully convolutional: a 3x3 'same' convolution, so borders differ between windows."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, channels))
    return keras.Model(inputs, keras.layers.Conv2D(K, 3, padding="same")(inputs))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class SlidingWindowTest(tf.test.TestCase):

    def test_mean_of_window_probabilities(self):
        model = toy_model()
        images = np.random.default_rng(0).normal(size=(2, 10, 7, 2)).astype(np.float32)
        crop, stride = 6, 3
        # Offsets written out: rows 0, 3 and 4 (flush with the border); columns 0 and 1.
        total, count = np.zeros((2, 10, 7, K)), np.zeros((2, 10, 7, 1))
        for top in (0, 3, 4):
            for left in (0, 1):
                window = images[:, top:top + crop, left:left + crop]
                total[:, top:top + crop, left:left + crop] += softmax(
                    np.asarray(model(window)))
                count[:, top:top + crop, left:left + crop] += 1
        got = inference.sliding_window(model, images, crop, stride)
        self.assertAllClose(got, total / count, rtol=1e-5, atol=1e-6)
        self.assertNotAllClose(got, inference.whole_image(model, images))  # borders differ

    def test_an_image_smaller_than_the_crop_is_padded_then_cut(self):
        model = toy_model()
        images = np.random.default_rng(1).normal(size=(1, 4, 5, 2)).astype(np.float32)
        padded = np.zeros((1, 6, 6, 2), np.float32)
        padded[:, :4, :5] = images
        expected = softmax(np.asarray(model(padded)))[:, :4, :5]
        self.assertAllClose(inference.sliding_window(model, images, 6, 6), expected,
                            rtol=1e-5, atol=1e-6)


class MultiScaleTest(tf.test.TestCase):

    def test_mean_over_scales_and_mirrors(self):
        model = toy_model()
        images = np.random.default_rng(2).normal(size=(2, 8, 6, 2)).astype(np.float32)
        outputs = []
        for scale in (1.0, 0.5):
            size = (round(8 * scale), round(6 * scale))
            scaled = tf.image.resize(images, size).numpy()
            for mirror in (False, True):
                x = scaled[:, :, ::-1] if mirror else scaled
                p = softmax(np.asarray(model(np.ascontiguousarray(x))))
                p = p[:, :, ::-1] if mirror else p
                outputs.append(tf.image.resize(np.ascontiguousarray(p), (8, 6)).numpy())
        got = inference.multi_scale(lambda x: inference.whole_image(model, x), images,
                                    scales=(1.0, 0.5), flip=True)
        self.assertAllClose(got, np.mean(outputs, axis=0), rtol=1e-5, atol=1e-6)
        self.assertAllClose(np.sum(got, axis=-1), np.ones((2, 8, 6)), atol=1e-5)
