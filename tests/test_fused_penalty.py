"""The fused penalty path (tftransfer.fused_penalty): closed-form gradients of every
regularizer against NumPy and against automatic differentiation, and training with
``penalize(..., path="fused")`` + ``fused_optimizer`` against the loss path."""
import math

import keras
import numpy as np
import tensorflow as tf

import tftransfer
from tftransfer import fused_penalty, regularizers
from tftransfer.methods.spd import with_spd
from tftransfer.models.lr_multipliers import with_lr_multipliers

ALPHA, EPSILON = 0.3, 1e-3


def numpy_value_and_gradient(name, w, w0, fisher):
    """Value and gradient of the regularizers' formulas (tftransfer/regularizers.py),
    written with NumPy in float64; groups are the fan-in (all axes but the last)."""
    d = w - w0
    if name == "L2":
        return ALPHA / 2 * np.sum(w ** 2), ALPHA * w
    if name == "L2SP":
        return ALPHA / 2 * np.sum(d ** 2), ALPHA * d
    if name == "L2SPFisher":
        return ALPHA / 2 * np.sum(fisher * d ** 2), ALPHA * fisher * d
    if name == "L1SP":
        root = np.sqrt(d ** 2 + EPSILON)
        return ALPHA * np.sum(root), ALPHA * d / root
    f = fisher if name == "GroupLassoSPFisher" else np.ones_like(d)
    axes = tuple(range(d.ndim - 1))
    s = math.sqrt(np.prod([d.shape[a] for a in axes]))
    norms = np.sqrt(np.sum(f * d ** 2, axis=axes, keepdims=True) + EPSILON)
    return ALPHA * s * np.sum(norms), ALPHA * s * f * d / norms


def make_regularizers(w0, fisher):
    return {"L2": regularizers.L2(ALPHA),
            "L2SP": regularizers.L2SP(ALPHA, w0),
            "L2SPFisher": regularizers.L2SPFisher(ALPHA, w0, fisher),
            "L1SP": regularizers.L1SP(ALPHA, w0, epsilon=EPSILON),
            "GroupLassoSP": regularizers.GroupLassoSP(ALPHA, w0, epsilon=EPSILON),
            "GroupLassoSPFisher": regularizers.GroupLassoSPFisher(ALPHA, w0, fisher,
                                                                  epsilon=EPSILON)}


class ClosedFormGradientTest(tf.test.TestCase):

    def test_every_regularizer_against_numpy_and_tape(self):
        rng = np.random.default_rng(0)
        w = rng.normal(size=(3, 3, 2, 4))
        w0 = w + rng.normal(scale=0.1, size=w.shape)
        fisher = rng.uniform(0.1, 2.0, size=w.shape)
        w32, w032, f32 = (a.astype(np.float32) for a in (w, w0, fisher))
        w, w0, fisher = (a.astype(np.float64) for a in (w32, w032, f32))
        for name, regularizer in make_regularizers(w032, f32).items():
            with self.subTest(name):
                want_value, want = numpy_value_and_gradient(name, w, w0, fisher)
                value, gradient = regularizer.value_and_gradient(w32)
                self.assertAllClose(regularizer.gradient(w32), want, rtol=1e-5, atol=1e-7)
                self.assertAllClose(gradient, want, rtol=1e-5, atol=1e-7)
                self.assertAllClose(float(value), want_value, rtol=1e-5)
                variable = tf.Variable(w32)
                with tf.GradientTape() as tape:
                    taped = regularizer(variable)
                self.assertAllClose(gradient, tape.gradient(taped, variable),
                                    rtol=1e-5, atol=1e-7)
                self.assertAllClose(value, taped, rtol=1e-6)
                # the check can fail: twice the gradient is far off
                self.assertGreater(np.max(np.abs(2 * want - want)), 1e-2)

    def test_depthwise_group_axes(self):
        rng = np.random.default_rng(1)
        w0 = rng.normal(size=(3, 3, 2, 2)).astype(np.float32)
        w = w0 + rng.normal(size=w0.shape).astype(np.float32)
        regularizer = regularizers.GroupLassoSP(ALPHA, w0, epsilon=EPSILON, group_axes=(0, 1))
        d = w.astype(np.float64) - w0
        norms = np.sqrt(np.sum(d ** 2, axis=(0, 1), keepdims=True) + EPSILON)
        self.assertAllClose(regularizer.gradient(w), ALPHA * 3.0 * d / norms, rtol=1e-5)


def conv_net(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(6, 3, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs)


def batches(steps=20, size=8):
    rng = np.random.default_rng(2)
    return [(rng.normal(size=(size, 8, 8, 2)).astype(np.float32),
             rng.integers(0, 3, size)) for _ in range(steps)]


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class FusedTrainingTest(tf.test.TestCase):
    """Loss path vs fused path from the same start on the same batches."""

    def pair(self, scheme, alpha=0.5, beta=0.2, wrap=None, outer=None):
        """Two identical models, one per path, their inherited kernels moved off ``w0`` so
        that the penalty gradient is large from the first step."""
        models, plans = [], []
        for path in ("loss", "fused"):
            model = conv_net(0)
            plan = tftransfer.penalize(model, scheme, alpha, beta, new_layers=["head"],
                                       epsilon=EPSILON, path=path)
            rng = np.random.default_rng(3)
            for layer in ("conv", "conv2"):
                kernel = model.get_layer(layer).kernel
                kernel.assign(kernel + rng.normal(scale=0.3, size=kernel.shape))
            optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
            if wrap is not None:
                optimizer = wrap(optimizer, model)
            if path == "fused":
                optimizer = tftransfer.fused_optimizer(optimizer, plan)
            if outer is not None:
                optimizer = outer(optimizer)
            model.compile(optimizer=optimizer, loss=LOSS)
            models.append(model)
            plans.append(plan)
        return models, plans

    def train(self, model, data):
        for x, y in data:
            model.train_on_batch(x, y)

    def max_relative_difference(self, a, b):
        return max(np.max(np.abs(u - v)) / np.max(np.abs(u))
                   for u, v in zip(a.get_weights(), b.get_weights()))

    def test_same_weights(self):
        data = batches()
        for scheme in ("l2_sp", "group_lasso_sp", "l1_sp"):
            with self.subTest(scheme):
                (loss_model, fused_model), _ = self.pair(scheme)
                self.assertEqual(fused_model.losses, [])
                self.assertLen(loss_model.losses, 3)
                self.train(loss_model, data)
                self.train(fused_model, data)
                self.assertLess(self.max_relative_difference(loss_model, fused_model), 1e-6)

    def test_doubled_gradient_is_detected(self):
        data = batches()
        (loss_model, fused_model), (_, plan) = self.pair("l2_sp")
        doubled = {p: (regularizers.L2SP(2 * r.alpha, r.reference)
                       if isinstance(r, regularizers.L2SP) else regularizers.L2(2 * r.alpha))
                   for p, r in plan.regularizers.items()}
        fused_model.optimizer.bind(doubled)
        self.train(loss_model, data)
        self.train(fused_model, data)
        self.assertGreater(self.max_relative_difference(loss_model, fused_model), 1e-3)

    def test_logged_penalty_is_the_loss_path_penalty(self):
        data = batches(5)
        (loss_model, fused_model), _ = self.pair("group_lasso_sp")
        self.assertEqual(fused_penalty.penalty_value(fused_model), 0.0)
        self.assertIsNone(fused_penalty.penalty_value(loss_model))
        for x, y in data:
            before = float(sum(float(l) for l in loss_model.losses))
            loss_model.train_on_batch(x, y)
            fused_model.train_on_batch(x, y)
            self.assertAllClose(fused_penalty.penalty_value(fused_model), before, rtol=1e-5)
            self.assertGreater(before, 0.1)

    def test_penalty_log_in_fit(self):
        (loss_model, fused_model), _ = self.pair("l2_sp")
        x = np.concatenate([b[0] for b in batches(3)])
        y = np.concatenate([b[1] for b in batches(3)])
        expected = float(sum(float(l) for l in loss_model.losses))
        seen = []
        record = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: seen.append(logs.get("penalty")))
        history = fused_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                                  callbacks=[fused_penalty.PenaltyLog(), record])
        self.assertAllClose(seen[0], expected, rtol=1e-5)
        self.assertIn("penalty", history.history)

    def test_under_lr_multipliers_and_loss_scale(self):
        data = batches(10)
        wrap = lambda opt, model: with_lr_multipliers(opt, {"conv/kernel": 0.1,
                                                            "head/kernel": 2.0})
        outer = lambda opt: keras.optimizers.LossScaleOptimizer(opt)
        (loss_model, fused_model), _ = self.pair("l2_sp", wrap=wrap, outer=outer)
        self.train(loss_model, data)
        self.train(fused_model, data)
        self.assertLess(self.max_relative_difference(loss_model, fused_model), 1e-6)

    def test_errors(self):
        model = conv_net(0)
        plan = tftransfer.penalize(model, "l2_sp", 0.1, 0.01, new_layers=["head"],
                                   path="fused")
        sgd = lambda **kw: keras.optimizers.SGD(0.01, momentum=0.9, **kw)
        with self.assertRaisesRegex(ValueError, "clipping"):
            tftransfer.fused_optimizer(sgd(clipnorm=1.0), plan)
        with self.assertRaisesRegex(ValueError, "inner optimizer"):
            tftransfer.fused_optimizer(keras.optimizers.LossScaleOptimizer(sgd()), plan)
        loss_plan = tftransfer.penalize(conv_net(1), "l2_sp", 0.1, 0.01, new_layers=["head"])
        with self.assertRaisesRegex(ValueError, "twice"):
            tftransfer.fused_optimizer(sgd(), loss_plan)
        with self.assertRaisesRegex(ValueError, "outermost"):
            with_spd(tftransfer.fused_optimizer(sgd(), plan), model)
        with self.assertRaisesRegex(ValueError, "Unknown path"):
            tftransfer.penalize(conv_net(2), "l2_sp", 0.1, 0.01, path="fast")
        rebuilt = type(tftransfer.fused_optimizer(sgd(), plan)).from_config(
            tftransfer.fused_optimizer(sgd(), plan).get_config())
        with self.assertRaisesRegex(ValueError, "bind"):
            rebuilt.build(model.trainable_variables)


if __name__ == "__main__":
    tf.test.main()
