"""The loss methods (DELTA / feature-map L2-SP, BSS, LwF, Co-Tuning) against NumPy
computations written from the papers' formulas, and their mechanism under model.fit.

Oracles, with B the batch size, derived by hand:
  feature maps   alpha * mean_b sum_l sum_c a_lc sum_hw (F - F0)^2
                 dL/dF_l = 2 alpha a_l (F_l - F0_l) / B, back-propagated by hand through
                 the toy network's Dense + ReLU layers
  attention      d_c = mean_x [CE(head(F with channel c zeroed)) - CE(head(F))],
                 a = softmax(standardise(d) / T)
  BSS            eta * sum of the k smallest s_i^2 (np.linalg.svd), gradient
                 sum_i 2 s_i u_i v_i^T
  LwF            lambda T^2 mean_b KL(p0 || p), p = softmax(s / T); dL/ds = lambda T (p - p0) / B
  Co-Tuning      R[t] = mean_{x of class t} softmax(c s0(x)); lambda mean_b CE(softmax(s), R[y]),
                 dL/ds = lambda (softmax(s) - R[y]) / B
"""
import keras
import numpy as np
import tensorflow as tf

from tftransfer import methods
from tftransfer.methods import bss, co_tuning, delta, loss_terms, lwf
from tftransfer.models.build import build, copy_head
from tftransfer.models.small_resnet import small_resnet


def relu(z):
    return np.maximum(z, 0)


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def weights64(layer):
    return [np.asarray(w, np.float64) for w in layer.get_weights()]


def perturb(layers, rng, scale=0.3):
    for layer in layers:
        layer.set_weights([w + scale * rng.normal(size=w.shape).astype(np.float32)
                           for w in layer.get_weights()])


def two_map_model():
    """(3, 3, 2) -> Dense fm1 (4, ReLU) -> Dense fm2 (3, ReLU) -> GAP -> Dense predictions."""
    inputs = keras.Input((3, 3, 2))
    f1 = keras.layers.Dense(4, activation="relu", name="fm1")(inputs)
    f2 = keras.layers.Dense(3, activation="relu", name="fm2")(f1)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(f2)
    return keras.Model(inputs, keras.layers.Dense(5, name="predictions")(pooled))


def np_two_maps(x, w1, b1, w2, b2):
    z1 = x @ w1 + b1
    f1 = relu(z1)
    z2 = f1 @ w2 + b2
    return z1, f1, z2, relu(z2)


class FeatureMapTest(tf.test.TestCase):
    """delta_fm and delta: value and gradient against a NumPy forward and backward pass."""

    def check(self, attention):
        rng = np.random.default_rng(0)
        keras.utils.set_random_seed(0)
        model = two_map_model()
        fm1, fm2 = model.get_layer("fm1"), model.get_layer("fm2")
        start = weights64(fm1) + weights64(fm2)
        term = delta.FeatureMapDistance(["fm1", "fm2"], alpha=0.7, attention=attention)
        wrapped = loss_terms.LossTermModel(model, [term])
        perturb([fm1, fm2], rng)  # the network moves; the frozen copy keeps the start
        x = rng.normal(size=(6, 3, 3, 2)).astype(np.float32)
        variables = fm1.trainable_weights + fm2.trainable_weights
        with tf.GradientTape() as tape:
            value = wrapped.term_values(x)[term.name]
        grads = tape.gradient(value, variables)

        w1, b1, w2, b2 = weights64(fm1) + weights64(fm2)
        x64 = x.astype(np.float64)
        z1, f1, z2, f2 = np_two_maps(x64, w1, b1, w2, b2)
        _, f1_0, _, f2_0 = np_two_maps(x64, *start)
        a1 = np.ones(4) if attention is None else attention["fm1"]
        a2 = np.ones(3) if attention is None else attention["fm2"]
        b = x.shape[0]
        want = 0.7 / b * (np.sum(a1 * (f1 - f1_0) ** 2) + np.sum(a2 * (f2 - f2_0) ** 2))
        self.assertAllClose(value, want, rtol=1e-5)
        g_z2 = 2 * 0.7 / b * a2 * (f2 - f2_0) * (z2 > 0)
        g_f1 = 2 * 0.7 / b * a1 * (f1 - f1_0) + g_z2 @ w2.T
        g_z1 = g_f1 * (z1 > 0)
        want_grads = [np.einsum("bhwi,bhwo->io", x64, g_z1), g_z1.sum(axis=(0, 1, 2)),
                      np.einsum("bhwi,bhwo->io", f1, g_z2), g_z2.sum(axis=(0, 1, 2))]
        for got, expected in zip(grads, want_grads):
            self.assertAllClose(got, expected, rtol=1e-4, atol=1e-6)
        self.assertGreater(want, 1e-3)  # the weights did move the maps

    def test_feature_map_l2_sp(self):
        self.check(None)

    def test_delta_with_attention_weights(self):
        self.check({"fm1": np.array([0.1, 0.2, 0.3, 0.4]), "fm2": np.array([0.5, 0.0, 0.5])})

    def test_term_is_zero_at_the_starting_point(self):
        model = two_map_model()
        wrapped = loss_terms.LossTermModel(model, [delta.FeatureMapDistance(["fm1", "fm2"])])
        x = np.random.default_rng(1).normal(size=(4, 3, 3, 2)).astype(np.float32)
        self.assertAllClose(wrapped.term_values(x)["delta_fm"], 0.0, atol=1e-7)

    def test_default_layers_are_the_last_block_of_each_stage(self):
        model = small_resnet((16, 16, 3), 3, widths=(4, 8, 8), blocks_per_stage=2)
        self.assertEqual(delta.default_feature_layers(model),
                         ["stage1_block2_out", "stage2_block2_out", "stage3_block2_out"])
        with self.assertRaisesRegex(ValueError, "units"):
            delta.default_feature_layers(two_map_model())

    def test_wrong_attention_width_and_unknown_layer(self):
        model = two_map_model()
        x = np.zeros((2, 3, 3, 2), np.float32)
        bad = delta.FeatureMapDistance(["fm1"], attention={"fm1": np.ones(3)})
        with self.assertRaisesRegex(ValueError, "3 weights, the layer 4 channels"):
            loss_terms.LossTermModel(model, [bad]).term_values(x)
        with self.assertRaisesRegex(ValueError, "no layer named 'nope'"):
            loss_terms.LossTermModel(model, [delta.FeatureMapDistance(["nope"])])


def one_map_model():
    """(2, 2, 3) -> Dense fm (4, ReLU) -> GAP -> Dense predictions (3)."""
    inputs = keras.Input((2, 2, 3))
    fm = keras.layers.Dense(4, activation="relu", name="fm")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(fm)
    return keras.Model(inputs, keras.layers.Dense(3, name="predictions")(pooled))


class ChannelAttentionTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(2)
        self.model = one_map_model()
        head = self.model.get_layer("predictions")
        kernel, bias = head.get_weights()
        kernel[2] = 0.0  # channel 2 does not reach the logits: importance exactly 0
        head.set_weights([kernel, bias])
        rng = np.random.default_rng(3)
        self.x = rng.normal(size=(10, 2, 2, 3)).astype(np.float32)
        self.y = rng.integers(0, 3, 10)

    def numpy_importance(self):
        w, b = weights64(self.model.get_layer("fm"))
        wh, bh = weights64(self.model.get_layer("predictions"))
        fm = relu(self.x.astype(np.float64) @ w + b)

        def losses(maps):
            logits = maps.mean(axis=(1, 2)) @ wh + bh
            return -np_log_softmax(logits)[np.arange(len(self.y)), self.y]

        base = losses(fm)
        importance = []
        for c in range(4):
            zeroed = fm.copy()
            zeroed[..., c] = 0
            importance.append(np.mean(losses(zeroed) - base))
        return np.array(importance)

    def test_importance_and_softmax_attention(self):
        want = self.numpy_importance()
        got = delta.channel_importance(self.model, ["fm"], (self.x, self.y))["fm"]
        self.assertAllClose(got, want, rtol=1e-4, atol=1e-6)
        self.assertAllClose(got[2], 0.0, atol=1e-7)
        z = (want - want.mean()) / want.std()
        attention = delta.channel_attention(self.model, ["fm"], (self.x, self.y),
                                            temperature=5.0)["fm"]
        self.assertAllClose(attention, np_softmax(z / 5.0), rtol=1e-4)
        self.assertAllClose(attention.sum(), 1.0, rtol=1e-6)
        raw = delta.attention_from_importance(want, temperature=0.5, standardize=False)
        self.assertAllClose(raw, np_softmax(want / 0.5), rtol=1e-5)

    def test_batches_and_channel_chunks_give_the_same_mean(self):
        want = self.numpy_importance()
        batches = [(self.x[:4], self.y[:4]), (self.x[4:], self.y[4:])]
        got = delta.channel_importance(self.model, ["fm"], batches, max_rows=5)["fm"]
        self.assertAllClose(got, want, rtol=1e-4, atol=1e-6)

    def test_head_epochs_train_a_copy_of_the_head_first(self):
        before = [w.copy() for w in self.model.get_weights()]
        plain = delta.channel_importance(self.model, ["fm"], (self.x, self.y))["fm"]
        trained = delta.channel_attention(self.model, ["fm"], (self.x, self.y),
                                          head_epochs=3, standardize=False, temperature=1.0)
        for got, want in zip(self.model.get_weights(), before):
            self.assertAllEqual(got, want)  # the starting point is untouched
        self.assertNotAllClose(trained["fm"], np_softmax(plain))

    def test_wrap_builds_delta_with_attention_and_new_layer_decay(self):
        wrapped = delta.wrap(self.model, alpha=0.1, beta=0.0, layers=["fm"],
                             attention_data=(self.x, self.y))
        self.assertEqual(wrapped.terms[0].name, "delta")
        self.assertAllClose(wrapped.terms[0].attention["fm"].sum(), 1.0, rtol=1e-6)


class DecayNewLayersTest(tf.test.TestCase):

    def test_only_the_new_kernels_are_decayed(self):
        model = two_map_model()
        paths = loss_terms.decay_new_layers(model, 0.3, ["predictions"])
        self.assertEqual(paths, ["predictions/kernel"])
        kernel = weights64(model.get_layer("predictions"))[0]
        self.assertAllClose(sum(float(l) for l in model.losses),
                            0.3 / 2 * np.sum(kernel ** 2), rtol=1e-5)


class BatchSpectralShrinkageTest(tf.test.TestCase):

    def test_value_and_gradient_against_numpy_svd(self):
        rng = np.random.default_rng(4)
        for shape, k in (((6, 10), 1), ((6, 10), 2), ((12, 5), 1), ((12, 5), 3)):
            f = rng.normal(size=shape).astype(np.float32)
            term = bss.BatchSpectralShrinkage(eta=0.5, k=k)
            var = tf.Variable(f)
            with tf.GradientTape() as tape:
                value = term({loss_terms.FEATURES: var}, {}, None)
            grad = tape.gradient(value, var)
            u, s, vt = np.linalg.svd(f.astype(np.float64), full_matrices=False)
            smallest = np.argsort(s)[:k]
            self.assertAllClose(value, 0.5 * np.sum(s[smallest] ** 2), rtol=1e-4)
            want = sum(2 * s[i] * np.outer(u[:, i], vt[i]) for i in smallest)
            self.assertAllClose(grad, 0.5 * want, rtol=1e-3, atol=1e-5)

    def test_through_the_model_reads_the_penultimate_features(self):
        rng = np.random.default_rng(5)
        model = one_map_model()
        wrapped = bss.wrap(model, eta=2.0, k=2)
        x = rng.normal(size=(5, 2, 2, 3)).astype(np.float32)
        w, b = weights64(model.get_layer("fm"))
        features = relu(x.astype(np.float64) @ w + b).mean(axis=(1, 2))  # (5, 4)
        s = np.linalg.svd(features, compute_uv=False)
        self.assertAllClose(wrapped.term_values(x)["bss"], 2.0 * np.sum(np.sort(s)[:2] ** 2),
                            rtol=1e-3, atol=1e-7)
        self.assertIsNone(wrapped.start_network)  # no starting-point forward pass

    def test_arguments(self):
        with self.assertRaisesRegex(ValueError, "k must be"):
            bss.BatchSpectralShrinkage(k=0)
        with self.assertRaisesRegex(ValueError, "eta"):
            bss.BatchSpectralShrinkage(eta=-1)


def source_task_model():
    """(4,) -> Dense body (6, ReLU) -> Dense predictions (3), and a source head (5)."""
    inputs = keras.Input((4,))
    body = keras.layers.Dense(6, activation="relu", name="body")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="predictions")(body))
    source = keras.layers.Dense(5, name="source_predictions")
    source.build((None, 6))
    return model, source


class LearningWithoutForgettingTest(tf.test.TestCase):

    def test_value_and_gradient_against_numpy(self):
        rng = np.random.default_rng(6)
        keras.utils.set_random_seed(6)
        model, source = source_task_model()
        body = model.get_layer("body")
        w0, b0 = weights64(body)
        ws0, bs0 = weights64(source)
        term = lwf.LearningWithoutForgetting(lam=0.8, temperature=2.0)
        wrapped = loss_terms.LossTermModel(model, [term], source_head=source)
        perturb([body, source], rng)
        x = rng.normal(size=(7, 4)).astype(np.float32)
        with tf.GradientTape() as tape:
            value = wrapped.term_values(x)["lwf"]
        grad_kernel = tape.gradient(value, source.kernel)

        x64 = x.astype(np.float64)
        w, b = weights64(body)
        ws, bs = weights64(source)
        feats = relu(x64 @ w + b)
        s = feats @ ws + bs
        s0 = relu(x64 @ w0 + b0) @ ws0 + bs0
        p0, p = np_softmax(s0 / 2.0), np_softmax(s / 2.0)
        kl = np.sum(p0 * (np.log(p0) - np.log(p)), axis=1)
        self.assertAllClose(value, 0.8 * 4.0 * kl.mean(), rtol=1e-5)
        grad_s = 0.8 * 2.0 * (p - p0) / len(x)
        self.assertAllClose(grad_kernel, feats.T @ grad_s, rtol=1e-4, atol=1e-7)
        self.assertGreater(float(value), 1e-4)

    def test_needs_the_source_head(self):
        model, _ = source_task_model()
        with self.assertRaisesRegex(ValueError, "no source_head"):
            loss_terms.LossTermModel(model, [lwf.LearningWithoutForgetting()])


class CoTuningTest(tf.test.TestCase):

    def test_relationship_is_the_class_mean_of_calibrated_predictions(self):
        rng = np.random.default_rng(7)
        logits = rng.normal(size=(20, 6)) * 3
        labels = np.arange(20) % 4
        got = co_tuning.relationship(logits, labels, 4, calibration_scale=0.7)
        for t in range(4):
            rows = []
            for i in np.flatnonzero(labels == t):
                e = np.exp(0.7 * logits[i] - np.max(0.7 * logits[i]))
                rows.append(e / e.sum())
            self.assertAllClose(got[t], np.mean(rows, axis=0), rtol=1e-5)
        self.assertAllClose(got.sum(axis=1), np.ones(4), rtol=1e-6)
        missing = co_tuning.relationship(logits, labels, 5)
        self.assertAllClose(missing[4], np_softmax(logits).mean(axis=0), rtol=1e-5)

    def test_calibration_scale_recovers_the_temperature_of_the_labels(self):
        rng = np.random.default_rng(8)
        logits = rng.normal(size=(20000, 5)) * 2
        p = np_softmax(2.5 * logits)
        labels = np.array([rng.choice(5, p=row) for row in p])
        scale = co_tuning.fit_calibration_scale(logits, labels)
        self.assertAllClose(scale, 2.5, rtol=0.05)

        def nll(c):
            return -np.mean(np_log_softmax(c * logits)[np.arange(len(labels)), labels])

        self.assertLessEqual(nll(scale), min(nll(scale * 0.99), nll(scale * 1.01)))

    def test_loss_value_and_gradient_against_numpy(self):
        rng = np.random.default_rng(9)
        keras.utils.set_random_seed(9)
        model, source = source_task_model()
        relationship = np_softmax(rng.normal(size=(3, 5)))
        term = co_tuning.CoTuningLoss(relationship, lam=2.3)
        wrapped = loss_terms.LossTermModel(model, [term], source_head=source)
        self.assertIsNone(wrapped.start_network)  # R is computed once: no frozen copy
        x = rng.normal(size=(8, 4)).astype(np.float32)
        y = rng.integers(0, 3, 8)
        with tf.GradientTape() as tape:
            value = wrapped.term_values(x, y)["co_tuning"]
        grad_kernel = tape.gradient(value, source.kernel)
        w, b = weights64(model.get_layer("body"))
        ws, bs = weights64(source)
        feats = relu(x.astype(np.float64) @ w + b)
        s = feats @ ws + bs
        soft = relationship[y]
        self.assertAllClose(value, 2.3 * np.mean(-np.sum(soft * np_log_softmax(s), axis=1)),
                            rtol=1e-5)
        grad_s = 2.3 * (np_softmax(s) - soft) / len(x)
        self.assertAllClose(grad_kernel, feats.T @ grad_s, rtol=1e-4, atol=1e-7)
        one_hot = np.eye(3, dtype=np.float32)[y]
        self.assertAllClose(wrapped.term_values(x, one_hot)["co_tuning"], value, rtol=1e-6)

    def test_relationship_from_the_starting_point_source_head(self):
        rng = np.random.default_rng(10)
        model, source = source_task_model()

        class Transfer:  # the fields of a TransferModel that Co-Tuning reads
            def __init__(self):
                self.model, self.source_head = model, source

            def source_model(self):
                return keras.Model(model.input,
                                   source(model.get_layer("predictions").input))

        x = rng.normal(size=(12, 4)).astype(np.float32)
        y = np.arange(12) % 3
        got = co_tuning.relationship_from_model(Transfer(), [(x[:5], y[:5]), (x[5:], y[5:])])
        w, b = weights64(model.get_layer("body"))
        ws, bs = weights64(source)
        s0 = relu(x.astype(np.float64) @ w + b) @ ws + bs
        self.assertAllClose(got, co_tuning.relationship(s0, y, 3), rtol=1e-5)


def small_transfer(seed=0):
    """A small ResNet 'source' (7 classes) and its target (4 classes), the source head
    kept aside, as tftransfer.models.build makes them."""
    keras.utils.set_random_seed(seed)
    source = small_resnet((16, 16, 3), 7, widths=(4, 8), name="source")
    features = source.get_layer("predictions").input
    target = keras.Model(source.input, keras.layers.Dense(4, name="predictions")(features))
    return target, copy_head(source.get_layer("predictions"), features.shape[-1])


class MechanismTest(tf.test.TestCase):
    """LossTermModel under model.fit: the loss is the data loss plus every term, once."""

    def all_terms(self, target, x, y):
        layers = delta.default_feature_layers(target)
        relationship = co_tuning.relationship(np.random.default_rng(0).normal(size=(16, 7)),
                                              y, 4)
        return [delta.FeatureMapDistance(layers, 0.01),
                delta.FeatureMapDistance(layers, 0.05, delta.channel_attention(
                    target, layers, (x, y))),
                bss.BatchSpectralShrinkage(0.1), lwf.LearningWithoutForgetting(),
                co_tuning.CoTuningLoss(relationship)]

    def test_train_loss_is_data_loss_plus_the_terms_and_evaluate_has_none(self):
        rng = np.random.default_rng(11)
        x = rng.uniform(size=(16, 16, 16, 3)).astype(np.float32)
        y = rng.integers(0, 4, 16)
        target, head = small_transfer()
        wrapped = loss_terms.LossTermModel(target, self.all_terms(target, x, y),
                                           source_head=head)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        wrapped.compile(keras.optimizers.SGD(0.05), ce, metrics=["accuracy"])
        start = [np.array(w) for w in wrapped.start_network.get_weights()]
        before = [np.array(w) for w in target.get_weights()]
        head_before = head.get_weights()[0].copy()

        terms = {k: float(v) for k, v in wrapped.term_values(x, y).items()}
        data = float(ce(y, wrapped(x, training=True)))
        logs = wrapped.train_on_batch(x, y, return_dict=True)
        self.assertAllClose(logs["loss"], data + sum(terms.values()), rtol=1e-4)
        for name, value in terms.items():
            self.assertAllClose(logs[name], value, rtol=1e-4, msg=name)
            self.assertGreater(value, 0.0, msg=name)

        history = wrapped.fit(x, y, batch_size=8, epochs=2, verbose=0).history
        self.assertTrue(np.all(np.isfinite(history["loss"])))
        self.assertCountEqual(history, ["loss", "accuracy", "delta_fm", "delta", "bss", "lwf",
                                        "co_tuning"])
        loss = wrapped.evaluate(x, y, verbose=0, return_dict=True)["loss"]
        self.assertAllClose(loss, float(ce(y, target(x, training=False))), rtol=1e-5)
        # The frozen copy is the starting point; the network and the source head trained.
        for got, want in zip(wrapped.start_network.get_weights(), start):
            self.assertAllEqual(got, want)
        self.assertGreater(max(np.abs(a - b).max() for a, b in
                               zip(target.get_weights(), before)), 1e-4)
        self.assertGreater(np.abs(head.get_weights()[0] - head_before).max(), 1e-5)
        self.assertAllClose(wrapped.predict(x, verbose=0), target.predict(x, verbose=0))

    def test_one_frozen_copy_for_every_starting_point_output(self):
        target, head = small_transfer()
        layers = delta.default_feature_layers(target)
        wrapped = loss_terms.LossTermModel(
            target, [delta.FeatureMapDistance(layers), lwf.LearningWithoutForgetting()],
            source_head=head)
        self.assertCountEqual(wrapped.start_network.output,
                              [loss_terms.feature_map_key(l) for l in layers] +
                              [loss_terms.SOURCE_LOGITS])
        self.assertEqual(wrapped.start_network.trainable_weights, [])
        with self.assertRaisesRegex(NotImplementedError, "save its target model"):
            wrapped.get_config()

    def test_the_methods_are_registered_as_loss_methods(self):
        for name in ("delta_fm", "delta", "bss", "lwf", "co_tuning"):
            spec = methods.get(name)
            self.assertEqual(spec.kind, "loss")
            self.assertTrue(spec.formula and spec.paper)
        self.assertEqual(methods.get("bss").hyper_parameters, {"eta": 1e-3, "k": 1})


class WrapMethodTest(tf.test.TestCase):
    """Every loss method by its registry name on a TransferModel of tftransfer.models.build."""

    def test_each_method_fits_from_its_name_and_defaults(self):
        import os
        keras.utils.set_random_seed(12)
        path = os.path.join(self.get_temp_dir(), "source.weights.h5")
        small_resnet((16, 16, 3), 7, widths=(4, 8)).save_weights(path)
        rng = np.random.default_rng(12)
        x = rng.uniform(size=(12, 16, 16, 3)).astype(np.float32)
        y = np.arange(12) % 4
        for name in ("delta_fm", "delta", "bss", "lwf", "co_tuning"):
            tm = build("small_resnet", 4, "custom", weights=path, input_shape=(16, 16, 3),
                       source_classes=7, arch_kwargs={"widths": (4, 8)}, seed=0)
            wrapped = loss_terms.wrap_method(name, tm, data=(x, y))
            self.assertEqual([t.name for t in wrapped.terms], [name])
            wrapped.compile(keras.optimizers.SGD(0.01),
                            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            history = wrapped.fit(x, y, batch_size=6, epochs=1, verbose=0).history
            self.assertTrue(np.isfinite(history["loss"][0]), msg=name)
            self.assertIn(name, history)
        self.assertEqual(wrapped.terms[0].lam, 2.3)  # the registry's default
        with self.assertRaisesRegex(ValueError, "no hyper-parameters"):
            loss_terms.wrap_method("bss", tm, gamma=1.0)
        with self.assertRaisesRegex(ValueError, "needs data"):
            loss_terms.wrap_method("co_tuning", tm)


if __name__ == "__main__":
    tf.test.main()
