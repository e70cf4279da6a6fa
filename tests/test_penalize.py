"""tftransfer.penalize on a small model: totals against NumPy, training on the active
backend, .keras round trips, checkpointing (TensorFlow), errors.

Backend-neutral (tests/backend_testutil.py): run with KERAS_BACKEND=tensorflow, jax or torch.
"""
import os
import unittest
import warnings

import keras
import numpy as np

import tftransfer
from tftransfer.penalty import SCHEMES

from tests.backend_testutil import TestCase, numpy, skip_unless_tensorflow, total


def small_model(name="net"):
    """Conv -> BN -> depthwise conv -> GAP -> Dense ("inherited") -> Dense "head" (new)."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="fc")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


INHERITED = {"conv/kernel": (0, 1, 2), "dw/kernel": (0, 1), "fc/kernel": (0,)}


def numpy_total(scheme, alpha, beta, w, w0, fisher, eps):
    """The penalty (docs/recipe.md) of the whole model, from its weights, in float64."""
    total = beta / 2 * np.sum(w["head/kernel"] ** 2)
    for path, axes in INHERITED.items():
        d = w[path] - w0[path]
        f = fisher[path]
        p = np.prod([d.shape[a] for a in axes])
        total += {
            "l2": lambda: alpha / 2 * np.sum(w[path] ** 2),
            "l2_sp": lambda: alpha / 2 * np.sum(d ** 2),
            "l2_sp_fisher": lambda: alpha / 2 * np.sum(f * d ** 2),
            "l1_sp": lambda: alpha * np.sum(np.sqrt(d ** 2 + eps)),
            "group_lasso_sp": lambda: alpha * np.sqrt(p) * np.sum(
                np.sqrt(np.sum(d ** 2, axis=axes) + eps)),
            "group_lasso_sp_fisher": lambda: alpha * np.sqrt(p) * np.sum(
                np.sqrt(np.sum(f * d ** 2, axis=axes) + eps)),
        }[scheme]()
    return total


def weights_by_path(model):
    return {v.path: numpy(v).astype(np.float64) for v in model.weights}


class PenalizeTotalsTest(TestCase):

    def test_every_scheme_matches_numpy_after_the_weights_move(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
        y = rng.integers(0, 3, 16)
        for scheme in SCHEMES:
            keras.utils.set_random_seed(1)
            model = small_model()
            w0 = weights_by_path(model)
            fisher = {p: rng.uniform(0.1, 2.0, size=w0[p].shape).astype(np.float32)
                      for p in INHERITED}
            kwargs = {"fisher": fisher} if "fisher" in scheme else {}
            plan = tftransfer.penalize(model, scheme, alpha=0.3, beta=0.05,
                                       new_layers=["head"], epsilon=1e-6, **kwargs)
            model.compile(optimizer=keras.optimizers.SGD(0.5),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x, y, batch_size=8, epochs=2, verbose=0)
            w = weights_by_path(model)
            if scheme == "none":
                self.assertEqual(model.losses, [])
                self.assertEqual(plan.inherited, [])
                continue
            self.assertCountEqual(plan.inherited, INHERITED)
            self.assertEqual(plan.new, ["head/kernel"])
            self.assertGreater(np.abs(w["conv/kernel"] - w0["conv/kernel"]).max(), 1e-4)
            got = total(model.losses)
            want = numpy_total(scheme, 0.3, 0.05, w, w0,
                               {p: f.astype(np.float64) for p, f in fisher.items()}, 1e-6)
            self.assertAllClose(got, want, rtol=1e-5, msg=scheme)

    def test_penalize_all_trainable_adds_biases_and_batch_norm(self):
        model = small_model()
        plan = tftransfer.penalize(model, "l2_sp", 0.1, 0.01, ["head"],
                                   penalize_all_trainable=True)
        self.assertCountEqual(plan.inherited, ["conv/kernel", "conv/bias", "bn/gamma", "bn/beta",
                                               "dw/kernel", "dw/bias", "fc/kernel", "fc/bias"])
        self.assertCountEqual(plan.new, ["head/kernel", "head/bias"])
        self.assertAllClose(total(model.losses),
                            0.01 / 2 * np.sum(numpy(model.get_layer("head").kernel) ** 2))

    def test_frozen_layers_add_no_penalty(self):
        model = small_model()
        tftransfer.penalize(model, "l2", 0.1, 0.0, ["head"])
        before = total(model.losses)
        model.get_layer("fc").trainable = False
        fc = numpy(model.get_layer("fc").kernel)
        self.assertAllClose(total(model.losses), before - 0.05 * np.sum(fc ** 2),
                            rtol=1e-5)


@skip_unless_tensorflow("tf.train.Checkpoint and SavedModel export are TensorFlow's")
class PenalizeStateTest(TestCase):

    def test_checkpoint_restores_the_starting_point_and_penalty(self):
        import tensorflow as tf
        model = small_model()
        tftransfer.penalize(model, "l2_sp", 0.2, 0.01, ["head"])
        for v in model.trainable_variables:
            v.assign_add(tf.ones_like(v) * 0.1)
        penalty = total(model.losses)
        path = tf.train.Checkpoint(model=model).save(os.path.join(self.get_temp_dir(), "ckpt"))

        other = small_model()  # different random init, so a different starting point
        tftransfer.penalize(other, "l2_sp", 0.2, 0.01, ["head"])
        self.assertNotAllClose(total(other.losses), penalty)
        tf.train.Checkpoint(model=other).restore(path).assert_consumed()
        self.assertAllClose(total(other.losses), penalty, rtol=1e-6)
        start = tftransfer.starting_point(other).references["conv/kernel"]
        self.assertAllClose(start, tftransfer.starting_point(model).references["conv/kernel"])

    def test_export_leaves_out_the_starting_point(self):
        import tensorflow as tf
        model = small_model()
        tftransfer.penalize(model, "l2_sp", 0.2, 0.01, ["head"])
        export_dir = os.path.join(self.get_temp_dir(), "export")
        model.export(export_dir, verbose=False)
        reloaded = tf.saved_model.load(export_dir)
        self.assertEqual(len(reloaded.variables), len(model.variables))
        x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
        self.assertAllClose(reloaded.serve(x), model(x), atol=1e-5)


class PenalizeErrorsTest(TestCase):

    def test_twice_is_an_error(self):
        model = small_model()
        tftransfer.penalize(model, "l2_sp", 0.1, 0.01, ["head"])
        with self.assertRaisesRegex(ValueError, "already called"):
            tftransfer.penalize(model, "l2", 0.1, 0.01, ["head"])

    def test_unknown_scheme(self):
        with self.assertRaisesRegex(ValueError, "Unknown scheme 'l3_sp'.*expected one of"):
            tftransfer.penalize(small_model(), "l3_sp", 0.1, 0.01, ["head"])

    def test_negative_strengths(self):
        with self.assertRaisesRegex(ValueError, "alpha must be a finite number >= 0"):
            tftransfer.penalize(small_model(), "l2_sp", -0.1, 0.01, ["head"])
        with self.assertRaisesRegex(ValueError, "beta must be a finite number >= 0"):
            tftransfer.penalize(small_model(), "l2_sp", 0.1, -1, ["head"])

    def test_new_layer_not_in_model(self):
        with self.assertRaisesRegex(ValueError, "no layer named 'classifier'.*'head'"):
            tftransfer.penalize(small_model(), "l2_sp", 0.1, 0.01, ["classifier"])
        stranger = small_model("other").get_layer("head")
        with self.assertRaisesRegex(ValueError, "is not part of model"):
            tftransfer.penalize(small_model(), "l2_sp", 0.1, 0.01, [stranger])

    def test_fisher_missing_wrong_shape_or_unneeded(self):
        model = small_model()
        good = {p: np.ones(model.get_layer(p.split("/")[0]).kernel.shape) for p in INHERITED}
        with self.assertRaisesRegex(ValueError, "needs `fisher`"):
            tftransfer.penalize(small_model(), "l2_sp_fisher", 0.1, 0.01, ["head"])
        missing = dict(good)
        del missing["dw/kernel"]
        with self.assertRaisesRegex(ValueError, r"no entry for 1 .*dw/kernel"):
            tftransfer.penalize(small_model(), "group_lasso_sp_fisher", 0.1, 0.01, ["head"],
                                fisher=missing)
        wrong = dict(good, **{"fc/kernel": np.ones((5, 4))})
        with self.assertRaisesRegex(ValueError, r"fisher\['fc/kernel'\] has shape \(5, 4\)"):
            tftransfer.penalize(small_model(), "l2_sp_fisher", 0.1, 0.01, ["head"], fisher=wrong)
        with self.assertRaisesRegex(ValueError, "does not use it"):
            tftransfer.penalize(small_model(), "l2_sp", 0.1, 0.01, ["head"], fisher=good)

    def test_failed_call_leaves_the_model_untouched(self):
        model = small_model()
        with self.assertRaises(ValueError):
            tftransfer.penalize(model, "l2_sp_fisher", 0.1, 0.01, ["head"], fisher={})
        self.assertEqual(model.losses, [])
        tftransfer.penalize(model, "l2_sp", 0.1, 0.01, ["head"])  # still allowed


class KerasFileTest(TestCase):
    """model.save("m.keras") and keras.models.load_model (docs/backends.md)."""

    def fitted(self, scheme, **kwargs):
        keras.utils.set_random_seed(4)
        model = small_model()
        w0 = weights_by_path(model)
        tftransfer.penalize(model, scheme, 0.3, 0.05, ["head"], **kwargs)
        rng = np.random.default_rng(0)
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(rng.normal(size=(16, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, 16),
                  batch_size=8, epochs=1, verbose=0)
        return model, w0

    def test_round_trip_keeps_the_penalty_and_the_starting_point(self):
        for scheme in ("l2", "l2_sp", "l2_sp_fisher", "group_lasso_sp"):
            fisher = ({p: np.full(small_model().get_layer(p.split("/")[0]).kernel.shape, 0.5)
                       for p in INHERITED} if "fisher" in scheme else None)
            model, w0 = self.fitted(scheme, **({"fisher": fisher} if fisher else {}))
            path = os.path.join(self.get_temp_dir(), scheme + ".keras")
            model.save(path)
            loaded = keras.models.load_model(path)
            self.assertGreater(total(model.losses), 0, scheme)
            self.assertAllClose(total(loaded.losses), total(model.losses), rtol=1e-6, msg=scheme)
            with self.assertRaisesRegex(ValueError, "already carries tftransfer penalties"):
                tftransfer.penalize(loaded, "l2_sp", 0.1, 0.01, ["head"])
            start = tftransfer.starting_point(loaded)
            if scheme == "l2":
                self.assertIsNone(start)
                continue
            self.assertCountEqual(start.references, INHERITED)
            for p in INHERITED:
                self.assertAllClose(start.references[p], w0[p], msg=p)

    def test_reloaded_model_trains_with_its_penalty(self):
        model, w0 = self.fitted("l2_sp")
        path = os.path.join(self.get_temp_dir(), "m.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        # Penalty alone, huge step: gradient descent on alpha/2 ||w - w0||^2 lands on w0.
        loaded.compile(optimizer=keras.optimizers.SGD(1 / 0.3),
                       loss=lambda y, p: keras.ops.zeros_like(keras.ops.sum(p, axis=-1)))
        rng = np.random.default_rng(1)
        loaded.fit(rng.normal(size=(4, 8, 8, 3)).astype(np.float32), np.zeros(4), batch_size=4,
                   epochs=1, verbose=0)
        self.assertAllClose(loaded.get_layer("fc").kernel, w0["fc/kernel"], atol=1e-5)

    def test_unbound_regularizer_is_never_a_silent_zero(self):
        model, _ = self.fitted("l2_sp")
        config = model.get_config()
        rebuilt = keras.Model.from_config(config)  # the config holds no arrays
        with self.assertRaisesRegex(ValueError, "not bound.*tftransfer.penalize"):
            total(rebuilt.losses)

    def test_model_rebuilt_from_arguments_warns_at_penalize_and_save(self):
        class Net(keras.Model):
            def __init__(self, units=3, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.body = keras.layers.Dense(4, name="body")
                self.head = keras.layers.Dense(units, name="head")

            def call(self, x):
                return self.head(self.body(x))

            def get_config(self):
                return {"units": self.units}

        model = Net()
        model(np.zeros((1, 5), np.float32))
        with self.assertWarnsRegex(UserWarning, "WITHOUT its penalty.*load_weights"):
            tftransfer.penalize(model, "l2_sp", 0.1, 0.01, ["head"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.save(os.path.join(self.get_temp_dir(), "net.keras"))
        self.assertTrue(any("WITHOUT its penalty" in str(w.message) for w in caught))


class PenalizeFitTest(TestCase):
    """model.fit with L2-SP on the active backend: the loss falls, and a larger alpha keeps
    the weights closer to the starting point (Li et al. 2018, Section 3)."""

    def test_fit_lowers_the_loss_and_alpha_pulls_toward_the_starting_point(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
        y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64) + (x[:, 0, 0, 0] > 0)
        distances = []
        for alpha in (0.0, 1.0, 30.0):
            keras.utils.set_random_seed(2)
            model = small_model()
            w0 = weights_by_path(model)
            tftransfer.penalize(model, "l2_sp", alpha, 0.0, ["head"])
            model.compile(optimizer=keras.optimizers.SGD(0.02),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            history = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history["loss"]
            self.assertLess(history[-1], history[0], f"alpha={alpha}")
            w = weights_by_path(model)
            distances.append(sum(np.sum((w[p] - w0[p]) ** 2) for p in INHERITED))
        self.assertGreater(distances[0], distances[1])
        self.assertGreater(distances[1], distances[2])


if __name__ == "__main__":
    unittest.main()
