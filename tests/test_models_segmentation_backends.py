"""The segmentation layers and models on the active Keras backend (run again under
KERAS_BACKEND=jax and torch by `make test`): adaptive pooling and bilinear resizing against
NumPy, every head at a fixed and an unknown input size, the penalty against NumPy after a
training step."""
import keras
import numpy as np
import tensorflow as tf

from tftransfer import penalize
from tftransfer.models.segmentation import build_segmentation
from tftransfer.models.segmentation_heads import AdaptiveAveragePooling, bilinear_resize


def as_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def numpy_adaptive_pool(x, bins):
    """Cell (i, j) averages rows floor(i H / b) .. ceil((i + 1) H / b) - 1, same for columns."""
    n_h, n_w = x.shape[1:3]
    out = np.zeros((x.shape[0], bins, bins, x.shape[3]))
    for i in range(bins):
        for j in range(bins):
            h0, h1 = (i * n_h) // bins, -(-((i + 1) * n_h) // bins)
            w0, w1 = (j * n_w) // bins, -(-((j + 1) * n_w) // bins)
            out[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return out


def numpy_bilinear(x, height, width):
    """Half-pixel bilinear: output i samples (i + 0.5) * n_in / n_out - 0.5, clamped."""
    def taps(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(pos).astype(int)
        return low, np.minimum(low + 1, n_in - 1), pos - low
    out = np.zeros((x.shape[0], height, width, x.shape[3]))
    (hl, hh, hf), (wl, wh, wf) = taps(x.shape[1], height), taps(x.shape[2], width)
    for i in range(height):
        for j in range(width):
            top = x[:, hl[i], wl[j]] * (1 - wf[j]) + x[:, hl[i], wh[j]] * wf[j]
            bottom = x[:, hh[i], wl[j]] * (1 - wf[j]) + x[:, hh[i], wh[j]] * wf[j]
            out[:, i, j] = top * (1 - hf[i]) + bottom * hf[i]
    return out


class LayersTest(tf.test.TestCase):

    def test_adaptive_pooling_against_numpy(self):
        x = np.random.default_rng(0).normal(size=(2, 7, 11, 3)).astype("float32")
        for bins in (1, 2, 3, 6):
            self.assertAllClose(as_numpy(AdaptiveAveragePooling(bins)(x)),
                                numpy_adaptive_pool(x, bins), rtol=1e-5, atol=1e-5)

    def test_bilinear_resize_against_numpy_and_keras(self):
        x = np.random.default_rng(0).normal(size=(2, 5, 7, 2)).astype("float32")
        for size in ((20, 28), (9, 3), (5, 7)):
            want = numpy_bilinear(x, *size)
            self.assertAllClose(as_numpy(bilinear_resize(x, *size)), want, rtol=1e-5,
                                atol=1e-5)
            self.assertAllClose(as_numpy(keras.ops.image.resize(x, size)), want, rtol=1e-4,
                                atol=1e-4)


class HeadsOnThisBackendTest(tf.test.TestCase):

    def test_fixed_and_unknown_sizes_agree(self):
        x = np.random.default_rng(1).uniform(0, 1, (2, 24, 40, 3)).astype("float32")
        for head in ("deeplab", "pspnet"):  # the heads with the layers of this package
            kwargs = dict(output_stride=2, arch_kwargs={"widths": (4, 8, 16)}, seed=0)
            dynamic = build_segmentation(head, "small_resnet", 3, "none",
                                         input_shape=(None, None, 3), **kwargs)
            fixed = build_segmentation(head, "small_resnet", 3, "none",
                                       input_shape=(24, 40, 3), **kwargs)
            fixed.model.set_weights(dynamic.model.get_weights())
            got = dynamic.model.predict(x, verbose=0)
            self.assertEqual(got.shape, (2, 24, 40, 3))
            self.assertAllClose(got, fixed.model.predict(x, verbose=0), rtol=1e-4,
                                atol=1e-4, msg=head)

    def test_penalty_after_a_training_step(self):
        alpha, beta = 0.2, 0.05
        sm = build_segmentation("pspnet", "small_resnet", 3, "none", input_shape=(32, 32, 3),
                                output_stride=2, arch_kwargs={"widths": (4, 8, 16)})
        model = sm.train_model
        # random weights standing in for a source: the backbone (stem_*, stage*) inherited
        backbone = {l.name for l in model.layers if l.name.startswith(("stem_", "stage"))}
        new = [l.name for l in model.layers if l.weights and l.name not in backbone]
        convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
        w0 = {l.name: as_numpy(l.kernel).astype(np.float64) for l in convs}
        penalize(model, "l2_sp", alpha, beta, new_layers=new)
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
        y = rng.integers(0, 3, (2, 32, 32))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=[loss, loss],
                      loss_weights=[1.0, sm.aux_weight])
        model.fit(x, [y, y], batch_size=2, epochs=1, verbose=0)
        expected = 0.0
        for layer in convs:
            w = as_numpy(layer.kernel).astype(np.float64)
            if layer.name in backbone:
                expected += alpha / 2 * np.sum((w - w0[layer.name]) ** 2)
            else:
                expected += beta / 2 * np.sum(w ** 2)
        self.assertGreater(expected, 0)
        got = sum(float(as_numpy(v)) for v in model.losses)
        self.assertAllClose(got, expected, rtol=1e-4)
