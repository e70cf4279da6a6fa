"""L2-SP-k (the L2-SP authors' TF code, mode 2) against NumPy.

The multipliers are transcribed from the authors' rule: list the inherited kernels as their
network creates them (a bottleneck's shortcut after its three convolutions), i = 0..N-1,
k_i = N - i, and N - i + 3 for a shortcut. Then
  Omega = alpha * sum_i k_i/2 ||w_i - w0_i||^2 + beta/2 ||w_new||^2,  grad_i = alpha k_i d_i.
"""
import os

import keras
import numpy as np
import tensorflow as tf

from tftransfer.methods import registry
from tftransfer.methods.l2_sp_k import depth_multipliers, penalize_l2_sp_k
from tftransfer.models.build import build


def bottleneck_net():
    """conv1, then two keras.applications-style bottlenecks (the first with a shortcut
    created before its branch, as keras.applications does), a new head."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1_conv")(inputs)
    for block, shortcut in ((1, True), (2, False)):
        name = f"conv2_block{block}"
        s = keras.layers.Conv2D(8, 1, name=name + "_0_conv")(x) if shortcut else x
        y = keras.layers.Conv2D(2, 1, name=name + "_1_conv")(x)
        y = keras.layers.Conv2D(2, 3, padding="same", name=name + "_2_conv")(y)
        y = keras.layers.Conv2D(8, 1, name=name + "_3_conv")(y)
        x = keras.layers.Add(name=name + "_add")([s, y])
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="predictions")(x))


def authors_multipliers(order):
    """The authors' loop over their variable order: N - i, or N - i + 3 for a shortcut."""
    n = len(order)
    return {p: float(n - i + 3 if "_0_" in p or "shortcut" in p else n - i)
            for i, p in enumerate(order)}


class L2SPKTest(tf.test.TestCase):

    def test_multipliers_follow_the_authors_rule_on_bottlenecks(self):
        model = bottleneck_net()
        order = ["conv1_conv", "conv2_block1_1_conv", "conv2_block1_2_conv",
                 "conv2_block1_3_conv", "conv2_block1_0_conv", "conv2_block2_1_conv",
                 "conv2_block2_2_conv", "conv2_block2_3_conv"]  # the authors' creation order
        want = authors_multipliers([n + "/kernel" for n in order])
        self.assertEqual(depth_multipliers(model, ["predictions"]), want)
        self.assertEqual(want["conv2_block1_0_conv/kernel"], want["conv2_block1_1_conv/kernel"])
        self.assertEqual(want["conv1_conv/kernel"], 8.0)

    def test_small_resnet_basic_blocks_and_frozen_layers(self):
        tm = build("small_resnet", 3, "none", input_shape=(8, 8, 1), seed=0,
                   arch_kwargs={"widths": (4, 8)})
        table = depth_multipliers(tm.model, ["predictions"])
        self.assertEqual(table, {"stem_conv/kernel": 6.0, "stage1_block1_1_conv/kernel": 5.0,
                                 "stage1_block1_2_conv/kernel": 4.0,
                                 "stage2_block1_1_conv/kernel": 3.0,
                                 "stage2_block1_2_conv/kernel": 2.0,
                                 "stage2_block1_shortcut_conv/kernel": 3.0})
        tm.model.get_layer("stem_conv").trainable = False  # not counted (tf.trainable_variables)
        frozen = depth_multipliers(tm.model, ["predictions"])
        self.assertEqual(frozen["stage1_block1_1_conv/kernel"], 5.0)  # N = 5 now, first kernel
        self.assertNotIn("stem_conv/kernel", frozen)

    def test_value_and_gradient_match_numpy_after_the_weights_move(self):
        model = bottleneck_net()
        w0 = {v.path: v.numpy().astype(np.float64) for v in model.weights}
        plan = penalize_l2_sp_k(model, alpha=0.3, beta=0.05, new_layers=["predictions"])
        self.assertEqual(plan.scheme, "l2_sp_k")
        k = depth_multipliers(model, ["predictions"])
        rng = np.random.default_rng(0)
        for v in model.trainable_variables:
            v.assign(v.numpy() + 0.1 * rng.normal(size=v.shape).astype(np.float32))
        w = {v.path: v.numpy().astype(np.float64) for v in model.weights}
        with tf.GradientTape() as tape:
            value = tf.add_n(model.losses)
        grads = dict(zip([v.path for v in model.trainable_variables],
                         tape.gradient(value, model.trainable_variables)))
        want = 0.05 / 2 * np.sum(w["predictions/kernel"] ** 2)
        for path, kp in k.items():
            d = w[path] - w0[path]
            want += 0.3 * kp / 2 * np.sum(d ** 2)
            self.assertAllClose(grads[path].numpy(), 0.3 * kp * d, rtol=1e-5, atol=1e-7)
        self.assertAllClose(float(value), want, rtol=1e-5)
        self.assertAllClose(grads["predictions/kernel"].numpy(), 0.05 * w["predictions/kernel"],
                            rtol=1e-5)
        self.assertIsNone(grads["conv1_conv/bias"])  # biases are not penalised

        path = os.path.join(self.get_temp_dir(), "l2spk.keras")
        model.save(path)
        self.assertAllClose(float(tf.add_n(keras.models.load_model(path).losses)), want,
                            rtol=1e-5)

    def test_registered_and_strength_checked(self):
        self.assertEqual(registry.get("l2_sp_k").kind, "weight_penalty")
        with self.assertRaisesRegex(ValueError, "alpha must be a finite number"):
            penalize_l2_sp_k(bottleneck_net(), -1.0, 0.0, ["predictions"])


if __name__ == "__main__":
    tf.test.main()
