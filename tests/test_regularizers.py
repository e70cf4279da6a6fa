"""Each regularizer against a NumPy computation written from the formulas of docs/recipe.md.

Values and gradients are derived by hand:
  L2:      a/2 sum w^2                          grad a w
  L2-SP:   a/2 sum d^2,       d = w - w0        grad a d
  Fisher:  a/2 sum F d^2                        grad a F d
  L1-SP:   a sum sqrt(d^2 + e)                  grad a d / sqrt(d^2 + e)
  GL-SP:   a sum_g sqrt(p) sqrt(sum_g q + e),   q = d^2 (or F d^2)
           grad a sqrt(p) (F) d / sqrt(sum_g q + e), broadcast over the group
"""
import keras
import numpy as np
import tensorflow as tf

from tftransfer import regularizers as R

SHAPES = {"conv": (3, 3, 4, 6), "dense": (7, 5), "depthwise": (3, 3, 4, 2)}


def np_group_penalty(w, w0, alpha, eps, axes, fisher=None):
    """Value and gradient of the (Fisher) group lasso, in float64."""
    d = w - w0
    f = np.ones_like(d) if fisher is None else fisher
    q = np.sum(f * d * d, axis=axes, keepdims=True)
    p = np.prod([w.shape[a] for a in axes])
    norms = np.sqrt(q + eps)
    value = alpha * np.sqrt(p) * np.sum(norms)
    grad = alpha * np.sqrt(p) * f * d / norms
    return value, grad


def tf_value_and_grad(regularizer, w):
    var = tf.Variable(w.astype(np.float32))
    with tf.GradientTape() as tape:
        value = regularizer(var)
    return float(value), tape.gradient(value, var).numpy()


class RegularizerFormulaTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(0)

    def arrays(self, kind):
        shape = SHAPES[kind]
        w0 = self.rng.normal(size=shape)
        w = w0 + 0.05 * self.rng.normal(size=shape)
        fisher = self.rng.uniform(0.0, 2.0, size=shape)
        as32 = lambda a: a.astype(np.float32).astype(np.float64)  # the values TF sees
        return as32(w), as32(w0), as32(fisher)

    def check(self, regularizer, w, value, grad):
        got_value, got_grad = tf_value_and_grad(regularizer, w)
        self.assertAllClose(got_value, value, rtol=1e-5, atol=0)
        self.assertAllClose(got_grad, grad, rtol=1e-5, atol=1e-7)

    def test_l2(self):
        for kind in SHAPES:
            w, _, _ = self.arrays(kind)
            self.check(R.L2(0.3), w, 0.3 / 2 * np.sum(w ** 2), 0.3 * w)

    def test_l2_sp(self):
        for kind in SHAPES:
            w, w0, _ = self.arrays(kind)
            reg = R.L2SP(0.7, reference=tf.constant(w0, tf.float32))
            self.check(reg, w, 0.7 / 2 * np.sum((w - w0) ** 2), 0.7 * (w - w0))

    def test_l2_sp_fisher(self):
        for kind in SHAPES:
            w, w0, f = self.arrays(kind)
            reg = R.L2SPFisher(0.7, reference=tf.constant(w0, tf.float32),
                               fisher=tf.constant(f, tf.float32))
            self.check(reg, w, 0.7 / 2 * np.sum(f * (w - w0) ** 2), 0.7 * f * (w - w0))

    def test_l1_sp_with_smoothing(self):
        for eps in (1e-16, 1e-3):
            for kind in SHAPES:
                w, w0, _ = self.arrays(kind)
                d = w - w0
                reg = R.L1SP(0.2, reference=tf.constant(w0, tf.float32), epsilon=eps)
                self.check(reg, w, 0.2 * np.sum(np.sqrt(d * d + eps)),
                           0.2 * d / np.sqrt(d * d + eps))

    def test_group_lasso_sp_groups_are_output_channels(self):
        for eps in (1e-16, 1e-2):
            for kind, axes in (("conv", (0, 1, 2)), ("dense", (0,)), ("depthwise", (0, 1))):
                w, w0, _ = self.arrays(kind)
                value, grad = np_group_penalty(w, w0, 0.4, eps, axes)
                reg = R.GroupLassoSP(0.4, reference=tf.constant(w0, tf.float32), epsilon=eps,
                                     group_axes=(0, 1) if kind == "depthwise" else None)
                self.check(reg, w, value, grad)

    def test_group_lasso_sp_fisher(self):
        for kind, axes in (("conv", (0, 1, 2)), ("dense", (0,))):
            w, w0, f = self.arrays(kind)
            value, grad = np_group_penalty(w, w0, 0.4, 1e-4, axes, fisher=f)
            reg = R.GroupLassoSPFisher(0.4, reference=tf.constant(w0, tf.float32),
                                       fisher=tf.constant(f, tf.float32), epsilon=1e-4)
            self.check(reg, w, value, grad)

    def test_smoothing_gives_zero_gradient_at_the_starting_point(self):
        w0 = self.rng.normal(size=SHAPES["conv"])
        for reg in (R.L1SP(1.0, tf.constant(w0, tf.float32)),
                    R.GroupLassoSP(1.0, tf.constant(w0, tf.float32))):
            value, grad = tf_value_and_grad(reg, w0)
            self.assertTrue(np.isfinite(value))
            self.assertAllEqual(grad, np.zeros_like(grad))


class RegularizerConfigTest(tf.test.TestCase):

    def all_regularizers(self):
        ref = tf.constant(np.random.default_rng(1).normal(size=(3, 3, 2, 4)), tf.float32)
        fisher = tf.ones_like(ref) * 0.5
        return [R.L2(0.1), R.L2SP(0.2, ref), R.L2SPFisher(0.3, ref, fisher),
                R.L1SP(0.4, ref, epsilon=1e-8), R.GroupLassoSP(0.5, ref, 1e-6, (0, 1)),
                R.GroupLassoSPFisher(0.6, ref, fisher, 1e-6)]

    def test_configs_round_trip_and_hold_no_arrays(self):
        w = tf.Variable(tf.random.normal((3, 3, 2, 4), seed=3))
        for reg in self.all_regularizers():
            config = reg.get_config()
            for value in config.values():
                self.assertIsInstance(value, (float, int, tuple, type(None)))
            restored = keras.saving.deserialize_keras_object(
                keras.saving.serialize_keras_object(reg))
            self.assertIs(type(restored), type(reg))
            self.assertEqual(restored.get_config(), config)
            if isinstance(reg, R.AnchoredRegularizer):
                with self.assertRaisesRegex(ValueError, "not bound"):
                    restored(w)
                restored.bind(reg.reference, reg.fisher)
            self.assertAllClose(restored(w), reg(w))

    def test_registered_names(self):
        for reg in self.all_regularizers():
            name = keras.saving.get_registered_name(type(reg))
            self.assertEqual(name, "tftransfer>" + type(reg).__name__)

    def test_bad_arguments(self):
        ref = tf.zeros((2, 3))
        with self.assertRaisesRegex(ValueError, "alpha must be a finite number >= 0"):
            R.L2SP(-1.0, ref)
        with self.assertRaisesRegex(ValueError, "alpha must be a number"):
            R.L2("strong")
        with self.assertRaisesRegex(ValueError, "needs `fisher`"):
            R.L2SPFisher(0.1, ref)
        with self.assertRaisesRegex(ValueError, "fisher has shape"):
            R.L2SPFisher(0.1, ref, tf.ones((3, 2)))
        with self.assertRaisesRegex(ValueError, "does not match its reference"):
            R.L2SP(0.1, ref)(tf.zeros((3, 2)))


if __name__ == "__main__":
    tf.test.main()
