"""Group-Lasso-SP with one group per layer (the L2-SP authors' TF code, mode 50) against NumPy:
  Omega = alpha * sum_l sqrt(p_l) sqrt(||d_l||_F^2 + eps) + beta/2 ||w_new||^2,
  grad_l = alpha sqrt(p_l) d_l / sqrt(||d_l||_F^2 + eps),  p_l = entries of kernel l.
"""
import os

import keras
import numpy as np
import tensorflow as tf

from tftransfer.methods import registry
from tftransfer.methods.group_lasso_sp_layer import penalize_group_lasso_sp_layer


def small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="fc")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


class GroupLassoSPLayerTest(tf.test.TestCase):

    def test_value_and_gradient_match_numpy(self):
        for eps in (1e-16, 1e-3):
            keras.utils.set_random_seed(0)
            model = small_model()
            w0 = {v.path: v.numpy().astype(np.float64) for v in model.weights}
            plan = penalize_group_lasso_sp_layer(model, 0.4, 0.02, ["head"], epsilon=eps)
            self.assertEqual(plan.scheme, "group_lasso_sp_layer")
            self.assertCountEqual(plan.inherited, ["conv/kernel", "dw/kernel", "fc/kernel"])
            rng = np.random.default_rng(1)
            for v in model.trainable_variables:
                v.assign(v.numpy() + 0.05 * rng.normal(size=v.shape).astype(np.float32))
            w = {v.path: v.numpy().astype(np.float64) for v in model.weights}
            with tf.GradientTape() as tape:
                value = tf.add_n(model.losses)
            grads = dict(zip([v.path for v in model.trainable_variables],
                             tape.gradient(value, model.trainable_variables)))
            want = 0.02 / 2 * np.sum(w["head/kernel"] ** 2)
            for path in plan.inherited:
                d = w[path] - w0[path]
                norm = np.sqrt(np.sum(d ** 2) + eps)
                want += 0.4 * np.sqrt(d.size) * norm
                self.assertAllClose(grads[path].numpy(), 0.4 * np.sqrt(d.size) * d / norm,
                                    rtol=1e-5, atol=1e-7)
            self.assertAllClose(float(value), want, rtol=1e-5)

    def test_differs_from_per_channel_groups_and_survives_save(self):
        model = small_model()
        penalize_group_lasso_sp_layer(model, 1.0, 0.0, ["head"])
        kernel = model.get_layer("conv").kernel
        kernel.assign(kernel.numpy() + 1.0)
        d = np.ones(kernel.shape)
        self.assertAllClose(float(kernel.regularizer(kernel)),
                            np.sqrt(d.size) * np.sqrt(d.size), rtol=1e-6)  # sqrt(p) * ||d||_F
        path = os.path.join(self.get_temp_dir(), "glsp.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        self.assertAllClose(float(tf.add_n(loaded.losses)), float(tf.add_n(model.losses)),
                            rtol=1e-6)

    def test_registered(self):
        spec = registry.get("group_lasso_sp_layer")
        self.assertEqual((spec.kind, spec.hyper_parameters["epsilon"]), ("weight_penalty", 1e-16))


if __name__ == "__main__":
    tf.test.main()
