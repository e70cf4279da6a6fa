"""StochNorm (Kou et al. 2020) against a NumPy computation of its two branches.

For channel c, with s_c ~ Bernoulli(p) (1: batch statistics):
  y = gamma * ((1 - s) * (x - mu_M) / sqrt(var_M + eps) + s * (x - mu_B) / sqrt(var_B + eps)) + beta
Gradients of L = sum(r * y), by hand:
  moving channel: dL/dx = gamma * r / sqrt(var_M + eps)
  batch channel:  dL/dx = gamma / sqrt(var_B + eps) * (r - mean(r) - xhat * mean(r * xhat))
  dL/dgamma = sum(r * xhat_selected), dL/dbeta = sum(r)
"""
import os

import keras
import numpy as np
import tensorflow as tf

from tftransfer.methods import registry
from tftransfer.methods.stochnorm import StochNorm, stochnorm_layers, swap_batch_norm
from tftransfer.models.build import build

EPS = 1e-3
MOMENTUM = 0.9


def numpy_branches(x, gamma, beta, moving_mean, moving_var):
    """(batch branch, moving branch, batch mean, biased batch variance), float64."""
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    batch = gamma * (x - mean) / np.sqrt(var + EPS) + beta
    moving = gamma * (x - moving_mean) / np.sqrt(moving_var + EPS) + beta
    return batch, moving, mean, var


class StochNormLayerTest(tf.test.TestCase):

    def make(self, channels, p, seed=0):
        rng = np.random.default_rng(seed)
        layer = StochNorm(p=p, seed=seed, epsilon=EPS, momentum=MOMENTUM)
        layer.build((None, 3, 3, channels))
        self.state = {
            "gamma": rng.uniform(0.5, 2.0, channels), "beta": rng.normal(size=channels),
            "moving_mean": rng.normal(size=channels), "moving_var": rng.uniform(0.5, 3.0, channels)}
        layer.set_weights([self.state[k].astype(np.float32) for k in
                           ("gamma", "beta", "moving_mean", "moving_var")])
        self.x = (2.0 * rng.normal(size=(6, 3, 3, channels)) + 0.7).astype(np.float32)
        return layer

    def branches(self):
        s = {k: v.astype(np.float32).astype(np.float64) for k, v in self.state.items()}
        return numpy_branches(self.x.astype(np.float64), s["gamma"], s["beta"],
                              s["moving_mean"], s["moving_var"])

    def selection(self, y, batch, moving):
        """Per channel: 1 where y is the batch branch, 0 where it is the moving branch;
        fails when a channel is neither (or mixes them across positions)."""
        chosen = []
        for c in range(y.shape[-1]):
            is_batch = np.allclose(y[..., c], batch[..., c], rtol=1e-4, atol=1e-4)
            is_moving = np.allclose(y[..., c], moving[..., c], rtol=1e-4, atol=1e-4)
            self.assertNotEqual(is_batch, is_moving, f"channel {c}: batch {is_batch}, "
                                                     f"moving {is_moving}")
            chosen.append(1 if is_batch else 0)
        return np.array(chosen)

    def test_each_channel_is_one_branch_chosen_with_probability_p(self):
        layer = self.make(channels=400, p=0.5)
        batch, moving, _, _ = self.branches()
        first = self.selection(layer(self.x, training=True).numpy(), batch, moving)
        # Binomial(400, 0.5): mean 200, std 10; 5 std either side.
        self.assertBetween(first.sum(), 150, 250)
        layer.set_weights([self.state[k].astype(np.float32) for k in
                           ("gamma", "beta", "moving_mean", "moving_var")])
        second = self.selection(layer(self.x, training=True).numpy(), batch, moving)
        self.assertGreater(np.sum(first != second), 100)  # drawn afresh at every call

    def test_probability_zero_and_one_select_a_single_branch(self):
        for p, want in ((0.0, 0), (1.0, 1), (0.2, None)):
            layer = self.make(channels=300, p=p)
            batch, moving, _, _ = self.branches()
            chosen = self.selection(layer(self.x, training=True).numpy(), batch, moving)
            if want is None:  # Binomial(300, 0.2): mean 60, std 6.9
                self.assertBetween(chosen.sum(), 25, 95)
            else:
                self.assertAllEqual(chosen, np.full(300, want))

    def test_moving_statistics_update_as_batch_norm(self):
        layer = self.make(channels=16, p=0.5)
        _, _, mean, var = self.branches()
        layer(self.x, training=True)
        self.assertAllClose(layer.moving_mean.numpy(),
                            MOMENTUM * self.state["moving_mean"] + (1 - MOMENTUM) * mean,
                            rtol=1e-5, atol=1e-5)
        self.assertAllClose(layer.moving_variance.numpy(),
                            MOMENTUM * self.state["moving_var"] + (1 - MOMENTUM) * var,
                            rtol=1e-5, atol=1e-5)

    def test_inference_is_batch_norm_with_moving_statistics(self):
        layer = self.make(channels=16, p=1.0)
        _, moving, _, _ = self.branches()
        self.assertAllClose(layer(self.x, training=False).numpy(), moving, rtol=1e-5, atol=1e-5)
        self.assertAllClose(layer.moving_mean.numpy(), self.state["moving_mean"])
        layer.trainable = False  # frozen: inference mode in training too (Keras 3 rule)
        self.assertAllClose(layer(self.x, training=True).numpy(), moving, rtol=1e-5, atol=1e-5)

    def test_gradients_follow_the_selected_branch(self):
        layer = self.make(channels=40, p=0.5, seed=3)
        batch, moving, mean, var = self.branches()
        r = np.random.default_rng(9).normal(size=self.x.shape)
        x = tf.Variable(self.x)
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(r, tf.float32) * y)
        dx, dgamma, dbeta = tape.gradient(loss, [x, layer.gamma, layer.beta])
        s = self.selection(y.numpy(), batch, moving)
        self.assertBetween(s.sum(), 5, 35)
        st = {k: v.astype(np.float32).astype(np.float64) for k, v in self.state.items()}
        x64 = self.x.astype(np.float64)
        xhat_b = (x64 - mean) / np.sqrt(var + EPS)
        xhat_m = (x64 - st["moving_mean"]) / np.sqrt(st["moving_var"] + EPS)
        axes = (0, 1, 2)
        dx_b = st["gamma"] / np.sqrt(var + EPS) * (
            r - r.mean(axis=axes) - xhat_b * (r * xhat_b).mean(axis=axes))
        dx_m = st["gamma"] * r / np.sqrt(st["moving_var"] + EPS)
        self.assertAllClose(dx.numpy(), np.where(s == 1, dx_b, dx_m), rtol=1e-3, atol=1e-4)
        self.assertAllClose(dgamma.numpy(), np.sum(r * np.where(s == 1, xhat_b, xhat_m),
                                                   axis=axes), rtol=1e-4, atol=1e-4)
        self.assertAllClose(dbeta.numpy(), r.sum(axis=axes), rtol=1e-5, atol=1e-4)

    def test_config_round_trip_and_registration(self):
        layer = StochNorm(p=0.3, seed=4, momentum=0.8, name="sn")
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        self.assertIsInstance(restored, StochNorm)
        self.assertEqual((restored.p, restored.seed, restored.momentum), (0.3, 4, 0.8))
        self.assertEqual(keras.saving.get_registered_name(StochNorm), "tftransfer>StochNorm")
        with self.assertRaisesRegex(ValueError, "probability"):
            StochNorm(p=1.5)
        spec = registry.get("stochnorm")
        self.assertEqual((spec.kind, spec.hyper_parameters), ("layer", {"p": 0.5}))


class SwapBatchNormTest(tf.test.TestCase):

    def transfer_model(self):
        tm = build("small_resnet", 3, "none", input_shape=(12, 12, 1), seed=0,
                   arch_kwargs={"widths": (4, 8)})
        rng = np.random.default_rng(0)
        for layer in tm.model.layers:  # distinct moving statistics, so the branches differ
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
                layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_mean.shape))
        return tm

    def test_swapped_model_has_the_weights_and_both_limits(self):
        tm = self.transfer_model()
        x = np.random.default_rng(1).normal(size=(4, 12, 12, 1)).astype(np.float32)
        bn_names = [l.name for l in tm.model.layers
                    if isinstance(l, keras.layers.BatchNormalization)]
        inference = tm.model(x, training=False).numpy()
        for p, reference in ((0.0, inference), (1.0, None)):
            swapped = swap_batch_norm(tm, p=p, seed=0)
            self.assertEqual(stochnorm_layers(swapped.model), bn_names)
            self.assertEqual([v.path for v in swapped.model.weights],
                             [v.path for v in tm.model.weights])
            for a, b in zip(swapped.model.weights, tm.model.weights):
                self.assertAllEqual(a.numpy(), b.numpy())
            self.assertAllClose(swapped.model(x, training=False).numpy(), inference, atol=1e-5)
            if reference is None:  # all batch statistics: batch norm in training mode
                clone = build("small_resnet", 3, "none", input_shape=(12, 12, 1), seed=0,
                              arch_kwargs={"widths": (4, 8)}).model
                clone.set_weights(tm.model.get_weights())
                reference = clone(x, training=True).numpy()
            self.assertAllClose(swapped.model(x, training=True).numpy(), reference,
                                rtol=1e-4, atol=1e-4)
        self.assertEqual(swapped.features().shape[-1], 8)  # the TransferModel still works

    def test_frozen_flags_are_kept_and_fit_runs_and_saves(self):
        tm = self.transfer_model()
        tm.model.get_layer("stem_bn").trainable = False
        swapped = swap_batch_norm(tm.model, p=0.5, seed=1)
        self.assertFalse(swapped.get_layer("stem_bn").trainable)
        swapped.compile(keras.optimizers.SGD(0.1),
                        keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(2)
        x = rng.normal(size=(8, 12, 12, 1)).astype(np.float32)
        history = swapped.fit(x, rng.integers(0, 3, 8), epochs=2, batch_size=4, verbose=0)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))
        path = os.path.join(self.get_temp_dir(), "sn.keras")
        swapped.save(path)
        loaded = keras.models.load_model(path)
        self.assertEqual(stochnorm_layers(loaded), stochnorm_layers(swapped))
        self.assertAllClose(loaded(x, training=False).numpy(),
                            swapped(x, training=False).numpy(), atol=1e-6)

    def test_model_with_a_default_named_input(self):
        inputs = keras.Input((4, 4, 2))  # keras.applications' input layer has a default name
        x = keras.layers.Conv2D(3, 1, name="conv")(inputs)
        model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
        swapped = swap_batch_norm(model, p=1.0)
        self.assertEqual(stochnorm_layers(swapped), ["bn"])
        x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype(np.float32)
        self.assertAllClose(swapped(x, training=True).numpy(), model(x, training=True).numpy(),
                            atol=1e-5)

    def test_subclassed_model_is_refused(self):
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.bn = keras.layers.BatchNormalization()

            def call(self, x):
                return self.bn(x)

        with self.assertRaisesRegex(ValueError, "functional or Sequential"):
            swap_batch_norm(Net())


if __name__ == "__main__":
    tf.test.main()
