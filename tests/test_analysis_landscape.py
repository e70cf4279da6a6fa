"""Loss landscapes: filter normalisation, the minimum at the centre, the tool's outputs."""
import os

import keras
import numpy as np
import tensorflow as tf

from tftransfer.analysis import landscape

from tests.analysis_testutil import assert_finite_csv, assert_png, load_tool, tiny_data, tiny_resnet


def _converged_softmax_regression():
    """Softmax regression trained by full-batch gradient descent to its unique minimum.

    Labels are random (not separable), so the cross-entropy is strictly convex with a
    finite minimiser; 400 steps of GD bring the gradient norm below 1e-4.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = rng.integers(0, 3, size=64)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(inputs))
    variables = model.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                y, model(x), from_logits=True))
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads):
            v.assign_sub(2.0 * g)
        return tf.linalg.global_norm(grads)

    for _ in range(400):
        norm = step()
    assert float(norm) < 1e-4, float(norm)
    return model, x, y


class LandscapeTest(tf.test.TestCase):

    def test_filter_normalisation(self):
        model = tiny_resnet(seed=1)
        variables = model.trainable_variables
        direction = landscape.filter_normalized_direction(variables, seed=3)
        for v, d in zip(variables, direction):
            w = v.numpy()
            self.assertEqual(d.shape, w.shape)
            if w.ndim == 1:
                self.assertAllEqual(d, np.zeros_like(w))
                continue
            for o in range(w.shape[-1]):
                self.assertAllClose(np.linalg.norm(d[..., o]), np.linalg.norm(w[..., o]),
                                    rtol=1e-5)

    def test_minimum_is_at_the_centre(self):
        model, x, y = _converged_softmax_regression()
        before = [v.numpy().copy() for v in model.trainable_variables]
        alphas = np.linspace(-1, 1, 21)
        line = landscape.slice_1d(model, (x, y), alphas, seed=5)
        step = alphas[1] - alphas[0]
        self.assertLessEqual(abs(line["alpha"][line["loss"].idxmin()]), step / 2)
        self.assertGreater(line["loss"].max(), line["loss"].min() + 1e-3)
        grid = np.linspace(-1, 1, 9)
        plane = landscape.slice_2d(model, (x, y), grid, grid, seed=7)
        best = plane.loc[plane["loss"].idxmin()]
        self.assertLessEqual(abs(best["alpha"]), (grid[1] - grid[0]) / 2)
        self.assertLessEqual(abs(best["beta"]), (grid[1] - grid[0]) / 2)
        for v, w in zip(model.trainable_variables, before):
            self.assertAllEqual(v.numpy(), w)  # weights restored

    def test_tool_on_small_resnet(self):
        tmp = self.get_temp_dir()
        tiny_resnet(seed=2).save(os.path.join(tmp, "m.keras"))
        x, y = tiny_data(n=12)
        np.savez(os.path.join(tmp, "d.npz"), x=x, y=y)
        outputs = load_tool("loss_landscape").main([
            "--model", os.path.join(tmp, "m.keras"), "--data", os.path.join(tmp, "d.npz"),
            "--out_dir", tmp, "--points", "5", "--grid", "3"])
        png1, csv1, png2, csv2 = outputs
        assert_png(self, png1)
        assert_png(self, png2)
        self.assertEqual(len(assert_finite_csv(self, csv1, ["alpha", "loss", "accuracy"])), 5)
        self.assertEqual(len(assert_finite_csv(self, csv2, ["alpha", "beta", "loss"])), 9)


if __name__ == "__main__":
    tf.test.main()


class InterpolationTest(tf.test.TestCase):

    def test_loss_along_the_path_matches_numpy(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(40, 3)).astype("float32")
        y = rng.integers(0, 4, size=40)
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
        start = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
        end = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
        current = [w.copy() for w in model.get_weights()]
        ts = [-0.5, 0.0, 0.3, 1.0, 1.5]
        frame = landscape.interpolation(model, start, end, (x, y), ts, batch_size=16)
        for t, loss, accuracy in zip(frame["t"], frame["loss"], frame["accuracy"]):
            kernel = (1 - t) * start[0] + t * end[0]
            bias = (1 - t) * start[1] + t * end[1]
            logits = x.astype(np.float64) @ kernel + bias
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            self.assertAllClose(loss, -log_p[np.arange(len(y)), y].mean(), rtol=1e-4)
            self.assertAllClose(accuracy, np.mean(logits.argmax(axis=1) == y))
        for w, saved in zip(model.get_weights(), current):
            self.assertAllEqual(w, saved)  # restored

    def test_mismatched_weight_lists_are_rejected(self):
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
        weights = model.get_weights()
        with self.assertRaisesRegex(ValueError, "same model"):
            landscape.interpolation(model, weights, weights[:1], np.zeros((2, 3)))
