"""tftransfer.penalize on a small model: totals against NumPy, checkpointing, errors."""
import os

import keras
import numpy as np
import tensorflow as tf

import tftransfer
from tftransfer.penalty import SCHEMES


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
    return {v.path: v.numpy().astype(np.float64) for v in model.weights}


class PenalizeTotalsTest(tf.test.TestCase):

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
            got = float(tf.add_n(model.losses))
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
        self.assertAllClose(float(tf.add_n(model.losses)),
                            0.01 / 2 * np.sum(model.get_layer("head").kernel.numpy() ** 2))

    def test_frozen_layers_add_no_penalty(self):
        model = small_model()
        tftransfer.penalize(model, "l2", 0.1, 0.0, ["head"])
        before = float(tf.add_n(model.losses))
        model.get_layer("fc").trainable = False
        fc = model.get_layer("fc").kernel.numpy()
        self.assertAllClose(float(tf.add_n(model.losses)), before - 0.05 * np.sum(fc ** 2),
                            rtol=1e-5)


class PenalizeStateTest(tf.test.TestCase):

    def test_checkpoint_restores_the_starting_point_and_penalty(self):
        model = small_model()
        tftransfer.penalize(model, "l2_sp", 0.2, 0.01, ["head"])
        for v in model.trainable_variables:
            v.assign_add(tf.ones_like(v) * 0.1)
        penalty = float(tf.add_n(model.losses))
        path = tf.train.Checkpoint(model=model).save(os.path.join(self.get_temp_dir(), "ckpt"))

        other = small_model()  # different random init, so a different starting point
        tftransfer.penalize(other, "l2_sp", 0.2, 0.01, ["head"])
        self.assertNotAllClose(float(tf.add_n(other.losses)), penalty)
        tf.train.Checkpoint(model=other).restore(path).assert_consumed()
        self.assertAllClose(float(tf.add_n(other.losses)), penalty, rtol=1e-6)
        start = tftransfer.starting_point(other).references["conv/kernel"]
        self.assertAllClose(start, tftransfer.starting_point(model).references["conv/kernel"])

    def test_export_leaves_out_the_starting_point(self):
        model = small_model()
        tftransfer.penalize(model, "l2_sp", 0.2, 0.01, ["head"])
        export_dir = os.path.join(self.get_temp_dir(), "export")
        model.export(export_dir, verbose=False)
        reloaded = tf.saved_model.load(export_dir)
        self.assertEqual(len(reloaded.variables), len(model.variables))
        x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
        self.assertAllClose(reloaded.serve(x), model(x), atol=1e-5)


class PenalizeErrorsTest(tf.test.TestCase):

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


if __name__ == "__main__":
    tf.test.main()
