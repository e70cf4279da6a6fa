"""Gradient statistics: norms against the softmax-regression closed form, the loss along
the gradient, and the callback/tool outputs on the small ResNet."""
import os

import keras
import numpy as np
import tensorflow as tf

from tftransfer.analysis import gradients, plots
from tftransfer.analysis.cli import fit_sgd, write_csv, write_png

from tests.analysis_testutil import assert_finite_csv, assert_png, load_tool, tiny_data, tiny_resnet


def _softmax_regression():
    rng = np.random.default_rng(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(inputs))
    model.get_layer("dense").kernel.assign(rng.normal(size=(4, 3)).astype("float32"))
    x = rng.normal(size=(10, 4)).astype("float32")
    y = rng.integers(0, 3, size=10)
    return model, x, y


class GradientStatisticsTest(tf.test.TestCase):

    def test_norms_match_closed_form(self):
        """Mean cross-entropy of softmax regression: dL/dW = X^T (P - Y) / m."""
        model, x, y = _softmax_regression()
        w = model.get_layer("dense").kernel.numpy().astype(np.float64)
        z = x.astype(np.float64) @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad_w = x.T @ (p - np.eye(3)[y]) / len(x)
        norms = gradients.gradient_norms(model, x, y)
        self.assertAllClose(norms["dense/kernel"], np.linalg.norm(grad_w), rtol=1e-5)

    def test_loss_along_gradient(self):
        model, x, y = _softmax_regression()
        before = [v.numpy().copy() for v in model.trainable_variables]
        losses = gradients.loss_along_gradient(model, x, y, [0.0, 0.01, 0.1])
        z = x.astype(np.float64) @ before[0] + before[1]
        log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
        self.assertAllClose(losses[0], -np.mean(log_p[np.arange(len(y)), y]), rtol=1e-5)
        self.assertLess(losses[1], losses[0])  # a small step down the gradient helps
        for v, w in zip(model.trainable_variables, before):
            self.assertAllEqual(v.numpy(), w)

    def test_callback_on_small_resnet(self):
        model = tiny_resnet(seed=3)
        x, y = tiny_data(n=16)
        prefix = os.path.join(self.get_temp_dir(), "g")
        callback = gradients.GradientStatistics((x[:8], y[:8]), every_n_batches=2)
        fit_sgd(model, x, y, epochs=1, learning_rate=0.05, batch_size=4, callbacks=[callback])
        norm_frame, loss_frame = callback.frames()
        write_csv(norm_frame, prefix + "_grad_norms.csv")
        write_csv(loss_frame, prefix + "_loss_variation.csv")
        write_png(plots.plot_gradient_norms(norm_frame), prefix + "_grad_norms.png")
        write_png(plots.plot_loss_variation(loss_frame), prefix + "_loss_variation.png")
        norms = assert_finite_csv(self, prefix + "_grad_norms.csv", ["step", "grad_norm"])
        losses = assert_finite_csv(self, prefix + "_loss_variation.csv", ["eta", "loss"])
        assert_png(self, prefix + "_grad_norms.png")
        assert_png(self, prefix + "_loss_variation.png")
        self.assertEqual(sorted(set(norms["step"])), [0, 2, 4])
        self.assertEqual(len(losses), 3 * 5)
        self.assertTrue(np.all(norms["grad_norm"] > 0))

    def test_tool_random_init(self):
        tmp = self.get_temp_dir()
        tiny_resnet(seed=4).save(os.path.join(tmp, "m.keras"))
        x, y = tiny_data(n=8)
        np.savez(os.path.join(tmp, "d.npz"), x=x, y=y)
        outputs = load_tool("gradient_stats").main([
            "--model", os.path.join(tmp, "m.keras"), "--data", os.path.join(tmp, "d.npz"),
            "--out_dir", tmp, "--init", "random", "--epochs", "1", "--batch_size", "4",
            "--every_n_batches", "1", "--probe_size", "4"])
        for path in outputs:
            if path.endswith(".png"):
                assert_png(self, path)
            else:
                assert_finite_csv(self, path, [])


if __name__ == "__main__":
    tf.test.main()
