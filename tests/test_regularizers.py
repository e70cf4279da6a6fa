"""Each regularizer against a NumPy computation written from the formulas of docs/recipe.md.

Values and gradients are derived by hand:
  L2:      a/2 sum w^2                          grad a w
  L2-SP:   a/2 sum d^2,       d = w - w0        grad a d
  Fisher:  a/2 sum F d^2                        grad a F d
  L1-SP:   a sum sqrt(d^2 + e)                  grad a d / sqrt(d^2 + e)
  GL-SP:   a sum_g sqrt(p) sqrt(sum_g q + e),   q = d^2 (or F d^2)
           grad a sqrt(p) (F) d / sqrt(sum_g q + e), broadcast over the group

Backend-neutral: gradients come from the active backend (tests/backend_testutil.py); run
with KERAS_BACKEND=tensorflow, jax or torch.
"""
import unittest

import keras
import numpy as np

from tftransfer import regularizers as R

from tests.backend_testutil import TestCase, value_and_grad

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


def const(a):
    return keras.ops.convert_to_tensor(np.asarray(a, np.float32))


class RegularizerFormulaTest(TestCase):

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
        got_value, got_grad = value_and_grad(regularizer, w)
        self.assertAllClose(got_value, value, rtol=1e-5, atol=0)
        self.assertAllClose(got_grad, grad, rtol=1e-5, atol=1e-7)

    def test_l2(self):
        for kind in SHAPES:
            w, _, _ = self.arrays(kind)
            self.check(R.L2(0.3), w, 0.3 / 2 * np.sum(w ** 2), 0.3 * w)

    def test_l2_sp(self):
        for kind in SHAPES:
            w, w0, _ = self.arrays(kind)
            reg = R.L2SP(0.7, reference=const(w0))
            self.check(reg, w, 0.7 / 2 * np.sum((w - w0) ** 2), 0.7 * (w - w0))

    def test_l2_sp_fisher(self):
        for kind in SHAPES:
            w, w0, f = self.arrays(kind)
            reg = R.L2SPFisher(0.7, reference=const(w0),
                               fisher=const(f))
            self.check(reg, w, 0.7 / 2 * np.sum(f * (w - w0) ** 2), 0.7 * f * (w - w0))

    def test_l1_sp_with_smoothing(self):
        for eps in (1e-16, 1e-3):
            for kind in SHAPES:
                w, w0, _ = self.arrays(kind)
                d = w - w0
                reg = R.L1SP(0.2, reference=const(w0), epsilon=eps)
                self.check(reg, w, 0.2 * np.sum(np.sqrt(d * d + eps)),
                           0.2 * d / np.sqrt(d * d + eps))

    def test_group_lasso_sp_groups_are_output_channels(self):
        for eps in (1e-16, 1e-2):
            for kind, axes in (("conv", (0, 1, 2)), ("dense", (0,)), ("depthwise", (0, 1))):
                w, w0, _ = self.arrays(kind)
                value, grad = np_group_penalty(w, w0, 0.4, eps, axes)
                reg = R.GroupLassoSP(0.4, reference=const(w0), epsilon=eps,
                                     group_axes=(0, 1) if kind == "depthwise" else None)
                self.check(reg, w, value, grad)

    def test_group_lasso_sp_fisher(self):
        for kind, axes in (("conv", (0, 1, 2)), ("dense", (0,))):
            w, w0, f = self.arrays(kind)
            value, grad = np_group_penalty(w, w0, 0.4, 1e-4, axes, fisher=f)
            reg = R.GroupLassoSPFisher(0.4, reference=const(w0),
                                       fisher=const(f), epsilon=1e-4)
            self.check(reg, w, value, grad)

    def test_smoothing_gives_zero_gradient_at_the_starting_point(self):
        w0 = self.rng.normal(size=SHAPES["conv"])
        for reg in (R.L1SP(1.0, const(w0)),
                    R.GroupLassoSP(1.0, const(w0))):
            value, grad = value_and_grad(reg, w0)
            self.assertTrue(np.isfinite(value))
            self.assertAllEqual(grad, np.zeros_like(grad))


class RegularizerConfigTest(TestCase):

    def all_regularizers(self):
        ref = const(np.random.default_rng(1).normal(size=(3, 3, 2, 4)))
        fisher = keras.ops.ones_like(ref) * 0.5
        return [R.L2(0.1), R.L2SP(0.2, ref), R.L2SPFisher(0.3, ref, fisher),
                R.L1SP(0.4, ref, epsilon=1e-8), R.GroupLassoSP(0.5, ref, 1e-6, (0, 1)),
                R.GroupLassoSPFisher(0.6, ref, fisher, 1e-6)]

    def test_configs_round_trip_and_hold_no_arrays(self):
        w = keras.Variable(np.random.default_rng(3).normal(size=(3, 3, 2, 4)), dtype="float32")
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
        ref = keras.ops.zeros((2, 3))
        with self.assertRaisesRegex(ValueError, "alpha must be a finite number >= 0"):
            R.L2SP(-1.0, ref)
        with self.assertRaisesRegex(ValueError, "alpha must be a number"):
            R.L2("strong")
        with self.assertRaisesRegex(ValueError, "needs `fisher`"):
            R.L2SPFisher(0.1, ref)
        with self.assertRaisesRegex(ValueError, "fisher has shape"):
            R.L2SPFisher(0.1, ref, keras.ops.ones((3, 2)))
        with self.assertRaisesRegex(ValueError, "does not match its reference"):
            R.L2SP(0.1, ref)(keras.ops.zeros((3, 2)))


class RegularizerStateTest(TestCase):
    """The w0 (and F) an -SP regularizer saves beside a layer's weights in .keras files."""

    def test_save_and_load_own_variables(self):
        rng = np.random.default_rng(2)
        ref, fisher, w = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
        for reg in (R.L2SP(0.3, const(ref)), R.L2SPFisher(0.3, const(ref), const(fisher)),
                    R.GroupLassoSP(0.3, const(ref), 1e-6)):
            store = {}
            reg.save_own_variables(store)
            self.assertEqual(sorted(store), ["0", "1"] if reg.uses_fisher else ["0"])
            restored = type(reg).from_config(reg.get_config())
            restored.load_own_variables(store)
            self.assertTrue(restored.bound)
            self.assertAllClose(restored(w), reg(w), rtol=1e-6)

    def test_load_assigns_into_the_bound_variables(self):
        ref = keras.Variable(np.zeros((2, 2)), dtype="float32", trainable=False)
        reg = R.L2SP(1.0, ref)
        reg.load_own_variables({"0": np.ones((2, 2), np.float32)})
        self.assertIs(reg.reference, ref)
        self.assertAllEqual(ref, np.ones((2, 2)))

    def test_loading_nothing_into_an_unbound_regularizer_warns(self):
        reg = R.L2SP.from_config({"alpha": 0.1})
        with self.assertWarnsRegex(UserWarning, "without its starting point.*penalize"):
            reg.load_own_variables({})
        self.assertFalse(reg.bound)
        with self.assertRaisesRegex(ValueError, "not bound.*tftransfer.penalize"):
            reg(keras.ops.zeros((2, 2)))


if __name__ == "__main__":
    unittest.main()
