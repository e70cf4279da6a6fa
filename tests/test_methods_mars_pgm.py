"""MARS-PGM and the Frobenius ball (Gouk et al. 2021) against NumPy.

Written from the formulas, with d = W - W0 and rows the fan-in of one output channel:
  MARS:      W0_j + d_j / max(1, ||d_j||_1 / gamma)   for each row j; then max_j ||d_j||_1 <= gamma
  Frobenius: W0 + d / max(1, ||d||_F / gamma);        then ||d||_F <= gamma (Euclidean projection)
A fit step is SGD w - lr * g (g from an independent tape) followed by the projection.
"""
import math

import keras
import numpy as np
import tensorflow as tf

from tftransfer.methods import mars_pgm, registry
from tftransfer.models.build import build

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
SHAPE = (10, 10, 1)


def np_mars(w, w0, gamma, axes):
    d = w - w0
    rows = np.sum(np.abs(d), axis=axes, keepdims=True)
    return w0 + d / np.maximum(1.0, rows / gamma)


def np_frobenius(w, w0, gamma):
    d = w - w0
    return w0 + d / max(1.0, np.sqrt(np.sum(d * d)) / gamma)


def make_model():
    return build("small_resnet", 3, "none", input_shape=SHAPE, seed=0,
                 arch_kwargs={"widths": (4, 8)}).model


class ProjectionFormulaTest(tf.test.TestCase):

    def setUp(self):
        self.rng = np.random.default_rng(0)

    def test_mars_scales_only_the_rows_outside_the_ball(self):
        for shape, axes in (((3, 3, 4, 6), (0, 1, 2)), ((7, 5), (0,)), ((3, 3, 4, 2), (0, 1))):
            w0 = self.rng.normal(size=shape)
            scale = self.rng.choice([0.01, 1.0], size=shape[-1])  # some rows in, some out
            w = w0 + scale * self.rng.normal(size=shape)
            gamma = 1.0
            got = mars_pgm.project(w.astype(np.float32), w0.astype(np.float32), gamma, "mars",
                                   axes).numpy()
            want = np_mars(w, w0, gamma, axes)
            self.assertAllClose(got, want, rtol=1e-5, atol=1e-6)
            before = np.sum(np.abs(w - w0), axis=axes)
            after = np.sum(np.abs(got - w0), axis=axes)
            self.assertTrue(np.any(before > gamma) and np.any(before < gamma))
            self.assertAllClose(after[before > gamma], np.full(np.sum(before > gamma), gamma),
                                rtol=1e-5)  # on the boundary
            self.assertAllClose(got[..., before <= gamma], w[..., before <= gamma], atol=1e-6)
            self.assertLessEqual(mars_pgm.distance(got, w0, "mars", axes), gamma * (1 + 1e-5))

    def test_frobenius_is_the_euclidean_projection(self):
        w0 = self.rng.normal(size=(3, 3, 4, 6))
        w = w0 + self.rng.normal(size=w0.shape)
        gamma = 0.5
        got = mars_pgm.project(w.astype(np.float32), w0.astype(np.float32), gamma,
                               "frobenius").numpy().astype(np.float64)
        self.assertAllClose(got, np_frobenius(w, w0, gamma), rtol=1e-5, atol=1e-6)
        self.assertAllClose(np.linalg.norm(got - w0), gamma, rtol=1e-5)
        # Nearest point of the ball: no sampled point of the ball is closer to w.
        for _ in range(200):
            q = self.rng.normal(size=w0.shape)
            q = w0 + q / np.linalg.norm(q) * gamma * self.rng.uniform() ** (1 / q.size)
            self.assertLessEqual(np.linalg.norm(w - got), np.linalg.norm(w - q) + 1e-5)
        inside = w0 + 0.01 * self.rng.normal(size=w0.shape)
        self.assertAllClose(mars_pgm.project(inside, w0, gamma, "frobenius"), inside)

    def test_zero_centre_and_infinite_radius(self):
        w = self.rng.normal(size=(6, 4))
        self.assertAllClose(mars_pgm.project(w, None, 0.5, "mars"),
                            np_mars(w, np.zeros_like(w), 0.5, (0,)), rtol=1e-6)
        self.assertAllClose(mars_pgm.project(w, None, math.inf, "mars"), w)
        with self.assertRaisesRegex(ValueError, "must be > 0"):
            mars_pgm.balls(make_model(), gamma=0.0)


class ProjectedFitTest(tf.test.TestCase):

    def data(self):
        rng = np.random.default_rng(1)
        return (rng.normal(size=(8,) + SHAPE).astype(np.float32), rng.integers(0, 3, 8))

    def gradients(self, model, x, y):
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        return {v.path: g.numpy().astype(np.float64)
                for v, g in zip(model.trainable_variables, grads)}

    def check_fit(self, norm, gamma, gamma_new):
        keras.utils.set_random_seed(0)
        model = make_model()
        x, y = self.data()
        w0 = {v.path: v.numpy().astype(np.float64) for v in model.trainable_variables}
        table = mars_pgm.balls(model, gamma, ["predictions"], gamma_new)
        optimizer = mars_pgm.with_mars_pgm(keras.optimizers.SGD(2.0), model, gamma=gamma,
                                           new_layers=["predictions"], gamma_new=gamma_new,
                                           norm=norm)
        model.compile(optimizer, LOSS, jit_compile=False)
        self.assertIn("predictions/kernel", table) if math.isfinite(gamma_new) else \
            self.assertNotIn("predictions/kernel", table)
        self.assertIn("stem_conv/kernel", table)
        self.assertNotIn("stem_bn/gamma", table)
        projected_rows = 0
        for _ in range(3):
            before = {v.path: v.numpy().astype(np.float64) for v in model.trainable_variables}
            g = self.gradients(model, x, y)
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            for v in model.trainable_variables:
                stepped = before[v.path] - 2.0 * g[v.path]
                ball = table.get(v.path)
                if ball is None:
                    want = stepped
                else:
                    center = w0[v.path] if ball["center"] == "start" else 0.0 * stepped
                    want = (np_mars(stepped, center, ball["radius"], tuple(ball["axes"]))
                            if norm == "mars" else np_frobenius(stepped, center, ball["radius"]))
                    got_distance = mars_pgm.distance(v.numpy(), center, norm, ball["axes"])
                    self.assertLessEqual(got_distance, ball["radius"] * (1 + 1e-5), v.path)
                    if norm == "mars":
                        rows = np.sum(np.abs(stepped - center), axis=tuple(ball["axes"]))
                        projected_rows += int(np.sum(rows > ball["radius"]))
                self.assertAllClose(v.numpy(), want, rtol=2e-4, atol=2e-5, msg=v.path)
        return projected_rows

    def test_mars_fit_matches_sgd_then_projection(self):
        self.assertGreater(self.check_fit("mars", 0.05, math.inf), 10)

    def test_mars_with_a_ball_around_zero_for_the_head(self):
        self.check_fit("mars", 0.05, 0.3)

    def test_frobenius_fit_matches_sgd_then_projection(self):
        self.check_fit("frobenius", 0.05, math.inf)

    def test_projection_holds_under_a_mirrored_strategy(self):
        strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
        x, y = self.data()
        with strategy.scope():
            model = make_model()
            optimizer = mars_pgm.with_mars_pgm(keras.optimizers.SGD(2.0, momentum=0.9), model,
                                               gamma=0.05, new_layers=["predictions"])
            model.compile(optimizer, LOSS, jit_compile=False)
        w0 = {v.path: v.numpy() for v in model.trainable_variables}
        model.fit(x, y, batch_size=8, epochs=3, verbose=0)
        for path, ball in mars_pgm.balls(model, 0.05, ["predictions"]).items():
            v = next(v for v in model.trainable_variables if v.path == path)
            self.assertNotAllClose(v.numpy(), w0[path])
            self.assertAllClose(mars_pgm.distance(v.numpy(), w0[path], "mars", ball["axes"]),
                                0.05, rtol=1e-4)  # pushed out by the big steps, back on the ball

    def test_config_round_trip_needs_a_bind(self):
        model = make_model()
        optimizer = mars_pgm.with_mars_pgm(keras.optimizers.Adam(1e-3), model, gamma=2.0,
                                           new_layers=["predictions"])
        self.assertEqual(type(optimizer).__name__, "MARSPGMAdam")
        config = keras.optimizers.serialize(optimizer)
        restored = keras.optimizers.deserialize(config)
        self.assertEqual(restored.projection, optimizer.projection)
        with self.assertRaisesRegex(ValueError, "not bound"):
            restored.build(model.trainable_variables)
        again = keras.optimizers.deserialize(config).bind(optimizer._anchor.starting_point)
        again.build(model.trainable_variables)
        self.assertEqual(len(again.variables), len(keras.optimizers.Adam().variables) +
                         2 * len(model.trainable_variables))  # no W0 among optimizer state

    def test_registered(self):
        self.assertEqual(registry.get("mars_pgm").kind, "optimizer")
        self.assertEqual(registry.get("frobenius_pgm").hyper_parameters["gamma"],
                         mars_pgm.DEFAULT_GAMMA)


if __name__ == "__main__":
    tf.test.main()
