"""Tests of tftransfer.fisher: the diagonal Fisher against closed forms and plain loops."""
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from tftransfer import fisher
from tftransfer.models.small_resnet import small_resnet
from tftransfer_cli import fisher as fisher_command

from tests.backend_testutil import BACKEND, skip_unless_tensorflow

TF_ONLY = skip_unless_tensorflow("tftransfer.fisher.diagonal is TensorFlow-only")


def _softmax_regression(d, c, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((d,))
    model = keras.Model(inputs, keras.layers.Dense(c, name="dense")(inputs))
    rng = np.random.default_rng(seed)
    model.get_layer("dense").kernel.assign(rng.normal(size=(d, c)).astype("float32"))
    model.get_layer("dense").bias.assign(rng.normal(size=(c,)).astype("float32"))
    return model


def _np_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@TF_ONLY
class SoftmaxRegressionTest(tf.test.TestCase):

    def test_exact_matches_closed_form(self):
        r"""Exact Fisher of softmax regression equals its closed form.

        Model: z = W^T x + b, p = softmax(z), log p_k = z_k - logsumexp(z). Then
        d log p_k / d W_jc = x_j (delta_kc - p_c) and d log p_k / d b_c = delta_kc - p_c.
        The inner expectation over k ~ p:
          sum_k p_k x_j^2 (delta_kc - p_c)^2
            = x_j^2 [p_c (1 - p_c)^2 + sum_{k != c} p_k p_c^2]
            = x_j^2 [p_c (1 - p_c)^2 + (1 - p_c) p_c^2]
            = x_j^2 p_c (1 - p_c).
        Averaging over the m inputs: F_W[j, c] = mean_i x_ij^2 p_ic (1 - p_ic) and
        F_b[c] = mean_i p_ic (1 - p_ic).
        """
        d, c, m = 5, 4, 12
        model = _softmax_regression(d, c, seed=1)
        x = np.random.default_rng(2).normal(size=(m, d)).astype("float32")
        result = fisher.diagonal(model, x, mode="exact", batch_size=5)

        w = model.get_layer("dense").kernel.numpy().astype(np.float64)
        b = model.get_layer("dense").bias.numpy().astype(np.float64)
        p = _np_softmax(x.astype(np.float64) @ w + b)
        expected_kernel = np.mean(x[:, :, None] ** 2 * (p * (1 - p))[:, None, :], axis=0)
        expected_bias = np.mean(p * (1 - p), axis=0)
        self.assertEqual(sorted(result), ["dense/bias", "dense/kernel"])
        self.assertAllClose(result["dense/kernel"], expected_kernel, atol=1e-5, rtol=1e-5)
        self.assertAllClose(result["dense/bias"], expected_bias, atol=1e-5, rtol=1e-5)

    def test_sampled_converges_to_exact(self):
        """The sampled estimate's relative error falls below 5% with 3000 labels/example."""
        model = _softmax_regression(4, 3, seed=3)
        x = np.random.default_rng(4).normal(size=(6, 4)).astype("float32")
        exact = fisher.diagonal(model, x, mode="exact")

        def rel_error(num_samples):
            est = fisher.diagonal(model, x, mode="sampled", num_samples=num_samples, seed=7)
            num = sum(np.sum((est[k] - exact[k]) ** 2) for k in exact)
            return np.sqrt(num / sum(np.sum(exact[k] ** 2) for k in exact))

        few, many = rel_error(2), rel_error(3000)
        self.assertLess(many, 0.05)
        self.assertLess(many, few)

    def test_epsilon_and_clip(self):
        model = _softmax_regression(3, 3, seed=5)
        x = np.random.default_rng(6).normal(size=(8, 3)).astype("float32")
        raw = fisher.diagonal(model, x)["dense/kernel"]
        clip = float(np.median(raw))
        post = fisher.diagonal(model, x, epsilon=1e-3, clip=clip)["dense/kernel"]
        self.assertAllClose(post, np.minimum(raw, clip) + 1e-3, atol=1e-7)

    def test_bad_inputs(self):
        model = _softmax_regression(3, 2, seed=0)
        x = np.zeros((4, 3), "float32")
        with self.assertRaisesRegex(ValueError, "mode must be one of"):
            fisher.diagonal(model, x, mode="empirical")
        with self.assertRaisesRegex(ValueError, "unknown variable paths"):
            fisher.diagonal(model, x, paths=["nope/kernel"])
        with self.assertRaisesRegex(ValueError, "no examples"):
            fisher.diagonal(model, np.zeros((0, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "num_samples"):
            fisher.diagonal(model, x, mode="sampled", num_samples=0)


def _loop_reference(model, batches, mode, num_samples=1, seed=0):
    """The Fisher from one example at a time: float64 sums of weighted squared gradients.

    Labels and weights are those of fisher.diagonal's modes, written from the formula:
    exact, every class k with weight p_k(x); sampled, ``num_samples`` labels drawn with
    ``tf.random.stateless_categorical(logits, num_samples, seed=[seed, step])`` per batch,
    each with weight 1 / num_samples.
    """
    variables = model.trainable_variables
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    m = 0
    for step, batch in enumerate(batches):
        logits = model(batch, training=False)
        if mode == "exact":
            p = _np_softmax(logits.numpy().astype(np.float64))
            rows = [[(k, p[i, k]) for k in range(p.shape[1])] for i in range(len(batch))]
        else:
            labels = tf.random.stateless_categorical(logits, num_samples, seed=[seed, step],
                                                     dtype=tf.int32).numpy()
            rows = [[(k, 1.0 / num_samples) for k in labels[i]] for i in range(len(batch))]
        for i, pairs in enumerate(rows):
            # Example i is differentiated inside a batch of two (i and a neighbour, only row 0
            # enters the objective): with batch norm in inference mode rows are independent,
            # and batch-1 convolution gradients crash some oneDNN builds.
            pair = batch[[i, (i + 1) % len(batch)]]
            for k, weight in pairs:
                with tf.GradientTape() as tape:
                    target = tf.nn.log_softmax(model(pair, training=False))[0, k]
                for total, g in zip(totals, tape.gradient(target, variables)):
                    total += weight * g.numpy().astype(np.float64) ** 2
        m += len(batch)
    return [total / m for total in totals]


def _randomise_batch_norm(model, seed):
    rng = np.random.default_rng(seed)
    for v in model.non_trainable_variables:  # non-trivial batch-norm statistics
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    return model


def _mixed_model():
    """Conv2D (with bias) -> BN -> DepthwiseConv2D (stride 2) -> BN -> Dense, 3 classes."""
    keras.utils.set_random_seed(21)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same",
                                     name="depthwise")(x)
    x = keras.layers.BatchNormalization(name="depthwise_bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(3, name="dense")(x)
    return _randomise_batch_norm(keras.Model(inputs, logits), 22)


@TF_ONLY
class ConvNetTest(tf.test.TestCase):

    def _model(self):
        keras.utils.set_random_seed(11)
        model = small_resnet((8, 8, 2), num_classes=3, widths=(4, 6), blocks_per_stage=1)
        return _randomise_batch_norm(model, 12)

    def _check(self, model, x, batch_size, mode, num_samples=1, seed=0):
        result = fisher.diagonal(model, x, mode=mode, num_samples=num_samples,
                                 batch_size=batch_size, seed=seed)
        batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
        expected = _loop_reference(model, batches, mode, num_samples, seed)
        variables = model.trainable_variables
        self.assertEqual(list(result), [v.path for v in variables])
        for v, e in zip(variables, expected):
            self.assertGreater(np.abs(e).max(), 0, msg=v.path)
            self.assertAllClose(result[v.path], e, rtol=1e-5, atol=1e-6 * np.abs(e).max(),
                                msg=v.path)

    def test_exact_matches_per_example_loop(self):
        x = np.random.default_rng(13).normal(size=(5, 8, 8, 2)).astype("float32")
        self._check(self._model(), x, 3, "exact")

    def test_mixed_layers_exact_and_sampled_match_per_example_loop(self):
        """Conv2D, DepthwiseConv2D, BatchNormalization and Dense, both modes."""
        model = _mixed_model()
        x = np.random.default_rng(23).normal(size=(7, 6, 6, 2)).astype("float32")
        self._check(model, x, 4, "exact")
        self._check(model, x, 4, "sampled", num_samples=3, seed=5)

    def test_dataset_input(self):
        """An (x, y) dataset gives the Fisher of its inputs, as the array of inputs does."""
        model = _softmax_regression(4, 3, seed=17)
        x = np.random.default_rng(18).normal(size=(5, 4)).astype("float32")
        dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(5, "int32"))).batch(3)
        from_dataset = fisher.diagonal(model, dataset, mode="exact")
        from_array = fisher.diagonal(model, x, mode="exact", batch_size=3)
        for key, value in from_array.items():
            self.assertAllClose(from_dataset[key], value, rtol=1e-6, atol=0)

    def test_subset_of_paths(self):
        model = self._model()
        x = np.random.default_rng(14).normal(size=(3, 8, 8, 2)).astype("float32")
        paths = ["stem_conv/kernel", "predictions/bias"]
        subset = fisher.diagonal(model, x, paths=paths)
        full = fisher.diagonal(model, x)
        self.assertEqual(list(subset), paths)
        for p in paths:
            self.assertAllClose(subset[p], full[p], rtol=1e-5, atol=1e-9)

    def test_subclassed_model(self):
        """Any Keras model works: a subclassed softmax regression gives the closed form."""
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(3)

            def call(self, x):
                return self.dense(x)

        keras.utils.set_random_seed(15)
        net = Net()
        x = np.random.default_rng(16).normal(size=(6, 4)).astype("float32")
        net(x[:1])
        result = fisher.diagonal(net, x, batch_size=4)
        w = net.dense.kernel.numpy().astype(np.float64)
        p = _np_softmax(x.astype(np.float64) @ w + net.dense.bias.numpy())
        expected = np.mean(x[:, :, None] ** 2 * (p * (1 - p))[:, None, :], axis=0)
        self.assertAllClose(result[net.dense.kernel.path], expected, rtol=1e-5, atol=1e-7)


class FileTest(tf.test.TestCase):

    def test_save_load_round_trip(self):
        values = {"stage1_block1_1_conv/kernel": np.random.rand(3, 3, 2, 4).astype("float32"),
                  "predictions/bias": np.random.rand(5).astype("float32")}
        path = os.path.join(self.get_temp_dir(), "fisher.npz")
        fisher.save(path, values, metadata={"mode": "exact", "examples": 7})
        loaded, meta = fisher.load(path, with_metadata=True)
        self.assertEqual(sorted(loaded), sorted(values))
        for key, value in values.items():
            self.assertAllEqual(loaded[key], value)
        self.assertEqual(meta, {"mode": "exact", "examples": 7})
        self.assertEqual(os.listdir(self.get_temp_dir()), ["fisher.npz"])

    @TF_ONLY
    def test_compute_fisher_tool(self):
        tmp = self.get_temp_dir()
        model = _softmax_regression(4, 3, seed=8)
        model_path = os.path.join(tmp, "source.keras")
        model.save(model_path)
        x = np.random.default_rng(9).normal(size=(7, 4)).astype("float32")
        data_path = os.path.join(tmp, "source.npz")
        np.savez(data_path, x=x, y=np.zeros(7, "int64"))
        out = os.path.join(tmp, "out", "fisher.npz")
        fisher_command.main(["--model", model_path, "--data", data_path, "--out", out,
                   "--batch_size", "3"])
        loaded, meta = fisher.load(out, with_metadata=True)
        expected = fisher.diagonal(model, x)
        for key in expected:
            self.assertAllClose(loaded[key], expected[key], rtol=1e-5, atol=1e-8)
        self.assertEqual(meta["examples"], 7)
        self.assertEqual(meta["mode"], "exact")


class OtherBackendTest(tf.test.TestCase):

    def test_a_clear_error_off_tensorflow(self):
        if BACKEND == "tensorflow":
            self.skipTest("the error is for the JAX and PyTorch backends")
        model = _softmax_regression(4, 3, seed=1)
        with self.assertRaisesRegex(RuntimeError, "TensorFlow backend only.*fisher.load"):
            fisher.diagonal(model, np.zeros((2, 4), "float32"))


if __name__ == "__main__":
    sys.exit(tf.test.main())
