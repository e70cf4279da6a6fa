"""The optimizer wrappers (learning-rate multipliers, MARS-PGM, SPD) on every Keras backend,
against NumPy.

No autodiff of the backend is needed: the model is linear, out = X W1 + X W2, with the mean
squared error, whose gradient is written by hand,
  G = dL/dW1 = dL/dW2 = 2 / (n k) X^T (X (W1 + W2) - Y),
so one SGD step is W - lr G, then the wrapper's rule (tests/test_methods_mars_pgm.py and
tests/test_methods_spd.py state them; the multipliers scale lr per variable). Run with
KERAS_BACKEND=tensorflow, jax or torch (the Makefile's BACKEND_TESTS): the PyTorch backend's
optimizers update all variables at once, which the wrappers must not skip
(tftransfer.optimizer_wrappers.PerVariableUpdate). The fused penalty
(tftransfer.fused_penalty) adds alpha (w - w0) (L2-SP) or beta w (L2 on a new layer) to G.
"""
import keras
import numpy as np
import tensorflow as tf

import tftransfer
from tftransfer import fused_penalty
from tftransfer.methods import mars_pgm, spd
from tftransfer.models.lr_multipliers import with_lr_multipliers

N, D, K = 8, 5, 3
LR = 0.2


def linear_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((D,))
    a = keras.layers.Dense(K, use_bias=False, name="fc1")(inputs)
    b = keras.layers.Dense(K, use_bias=False, name="fc2")(inputs)
    return keras.Model(inputs, keras.layers.Add(name="add")([a, b]))


def weights(model):
    return {v.path: np.asarray(keras.ops.convert_to_numpy(v), np.float64)
            for v in model.trainable_variables}


class OptimizerWrappersOnThisBackendTest(tf.test.TestCase):

    def setUp(self):
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(N, D)).astype(np.float32)
        self.y = rng.normal(size=(N, K)).astype(np.float32)

    def gradient(self, w):
        x, y = self.x.astype(np.float64), self.y.astype(np.float64)
        return 2.0 / (N * K) * x.T @ (x @ (w["fc1/kernel"] + w["fc2/kernel"]) - y)

    def fit_one_step(self, model, optimizer):
        model.compile(optimizer, keras.losses.MeanSquaredError())
        model.fit(self.x, self.y, batch_size=N, epochs=1, shuffle=False, verbose=0)

    def test_lr_multipliers_scale_each_variables_step(self):
        model = linear_model()
        w = weights(model)
        g = self.gradient(w)
        multipliers = {"fc1/kernel": 0.25, "fc2/kernel": 0.0}
        self.fit_one_step(model, with_lr_multipliers(keras.optimizers.SGD(LR), multipliers))
        got = weights(model)
        for path, m in multipliers.items():
            self.assertAllClose(got[path], w[path] - m * LR * g, rtol=1e-5, atol=1e-7,
                                msg=path)

    def test_lr_multipliers_with_momentum_over_two_steps(self):
        model = linear_model()
        w = weights(model)
        mu, m = 0.9, 0.5
        self.fit_one_step(model, with_lr_multipliers(keras.optimizers.SGD(LR, momentum=mu),
                                                     {"fc1/kernel": m}))
        model.fit(self.x, self.y, batch_size=N, epochs=1, shuffle=False, verbose=0)
        want = {p: w[p].copy() for p in w}
        velocity = {p: np.zeros_like(w[p]) for p in w}
        for _ in range(2):  # v <- mu v - lr m g; w <- w + v, both kernels share the gradient
            g = self.gradient(want)
            for path, scale in (("fc1/kernel", m), ("fc2/kernel", 1.0)):
                velocity[path] = mu * velocity[path] - LR * scale * g
                want[path] = want[path] + velocity[path]
        got = weights(model)
        for path in want:
            self.assertAllClose(got[path], want[path], rtol=1e-5, atol=1e-6, msg=path)

    def test_mars_projection_after_the_step(self):
        model = linear_model()
        w = weights(model)
        g = self.gradient(w)
        optimizer = mars_pgm.with_mars_pgm(keras.optimizers.SGD(LR), model, gamma=0.02)
        self.fit_one_step(model, optimizer)
        got = weights(model)
        for path in ("fc1/kernel", "fc2/kernel"):
            d = -LR * g  # the step, from W0 = w
            rows = np.abs(d).sum(axis=0, keepdims=True)
            self.assertTrue(np.all(rows > 0.02))
            self.assertAllClose(got[path], w[path] + d / np.maximum(1.0, rows / 0.02),
                                rtol=1e-5, atol=1e-7)

    def test_spd_decays_the_selected_variable_only(self):
        model = linear_model()
        w = weights(model)
        g = self.gradient(w)
        rng = np.random.default_rng(1)
        noise = rng.normal(size=g.shape)
        noise -= np.sum(noise * g) / np.sum(g * g) * g
        d1 = LR * g / 4 + 0.1 * np.linalg.norm(LR * g) * noise / np.linalg.norm(noise)
        w0 = {"fc1/kernel": (w["fc1/kernel"] - d1).astype(np.float32),
              "fc2/kernel": (w["fc2/kernel"] + g).astype(np.float32)}
        optimizer = spd.with_spd(keras.optimizers.SGD(LR), model, strength=0.6,
                                 starting_point=w0)
        self.fit_one_step(model, optimizer)
        got = weights(model)
        for path, selected in (("fc1/kernel", True), ("fc2/kernel", False)):
            before, ref = w[path], w0[path].astype(np.float64)
            stepped = before - LR * g
            self.assertEqual(-np.sum(g * (before - ref)) < 0, selected)
            want = stepped
            if selected:
                new, old = np.linalg.norm(stepped - ref), np.linalg.norm(before - ref)
                r = np.clip((new - old) / new, 0, 1)
                self.assertGreater(r, 0)
                want = stepped - 0.6 * r * (stepped - ref)
            self.assertAllClose(got[path], want, rtol=1e-5, atol=1e-7, msg=path)

    def test_fused_penalty_adds_its_closed_form_gradient(self):
        model = linear_model()
        alpha, beta = 0.3, 0.1
        plan = tftransfer.penalize(model, "l2_sp", alpha, beta, new_layers=["fc2"],
                                   path="fused")
        self.assertEqual(list(model.losses), [])
        w0 = weights(model)["fc1/kernel"]
        offset = np.random.default_rng(2).normal(size=w0.shape)
        model.get_layer("fc1").kernel.assign((w0 + offset).astype(np.float32))
        w = weights(model)
        g = self.gradient(w)
        self.fit_one_step(model, tftransfer.fused_optimizer(keras.optimizers.SGD(LR), plan))
        got = weights(model)
        d = w["fc1/kernel"] - w0
        self.assertAllClose(got["fc1/kernel"], w["fc1/kernel"] - LR * (g + alpha * d),
                            rtol=1e-5, atol=1e-6)
        w2 = w["fc2/kernel"]
        self.assertAllClose(got["fc2/kernel"], w2 - LR * (g + beta * w2), rtol=1e-5, atol=1e-6)
        value = alpha / 2 * np.sum(d ** 2) + beta / 2 * np.sum(w2 ** 2)
        self.assertAllClose(fused_penalty.penalty_value(model), value, rtol=1e-5)


if __name__ == "__main__":
    tf.test.main()
