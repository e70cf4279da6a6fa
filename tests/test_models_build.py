"""tftransfer.models.build: inherited weights, new and source heads, units, penalty, errors."""
import os
import re
import shutil
import socket
import tempfile
from unittest import mock

import h5py
import keras
import numpy as np
import tensorflow as tf

import tftransfer
from tftransfer.models.build import KERAS_RESNET_URL, build
from tftransfer.models.small_resnet import small_resnet

SHAPE = (64, 64, 3)  # small inputs: the architecture (and every weight) is the same at 224
BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


def file_arrays(path, saved_model):
    """{layer name: [arrays]} read with h5py from a Keras 3 ``.weights.h5`` file.

    Keras 3 stores layer ``i`` of class ``C`` (in ``model.layers`` order) under
    ``layers/<snake_case(C)>[_<i>]/vars/<j>``; the mapping to layer names is rebuilt from the
    model that saved the file.
    """
    counts, arrays = {}, {}
    with h5py.File(path, "r") as f:
        for layer in saved_model.layers:
            key = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
            key = re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower()  # Conv2D -> conv2d
            n = counts.get(key, -1) + 1
            counts[key] = n
            group = f"layers/{key}" + (f"_{n}" if n else "") + "/vars"
            if layer.weights:
                arrays[layer.name] = [f[group][str(j)][()] for j in range(len(layer.weights))]
    return arrays


class KerasResNetBuildTest(tf.test.TestCase):
    """ResNet-50 and -101 built from local files saved from keras.applications."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.built, cls.files = {}, {}
        for arch, ctor, classes in (("resnet50", keras.applications.ResNet50, 7),
                                    ("resnet101", keras.applications.ResNet101, 3)):
            source = ctor(weights=None, input_shape=SHAPE, classes=1000)
            path = os.path.join(cls.tmp.name, f"{arch}.weights.h5")
            source.save_weights(path)
            cls.files[arch] = file_arrays(path, source)
            del source
            cls.built[arch] = build(arch, classes, "imagenet", weights=path, input_shape=SHAPE,
                                    seed=1)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_every_inherited_variable_equals_the_file(self):
        for arch, tm in self.built.items():
            arrays = self.files[arch]
            inherited = [layer for layer in tm.model.layers
                         if layer.weights and layer.name != "predictions"]
            self.assertEqual(sorted(l.name for l in inherited),
                             sorted(n for n in arrays if n != "predictions"))
            for layer in inherited:
                for value, expected in zip(layer.get_weights(), arrays[layer.name]):
                    np.testing.assert_array_equal(value, expected, err_msg=layer.name)
            self.assertEqual(tm.inherited_layers, [l.name for l in inherited])

    def test_new_head_and_source_head(self):
        for arch, tm in self.built.items():
            head = tm.model.get_layer("predictions")
            self.assertEqual(tm.new_layers, ["predictions"])
            self.assertEqual(tuple(head.kernel.shape), (2048, head.units))
            self.assertEqual(tm.model.output.shape[-1], head.units)
            self.assertEqual(head.get_config()["activation"], "linear")  # logits
            np.testing.assert_array_equal(head.bias.numpy(), 0.0)
            # He normal (Keras: truncated normal, stddev sqrt(2 / fan_in)): loose check.
            self.assertAllClose(np.std(head.kernel.numpy()), np.sqrt(2 / 2048), rtol=0.25)
            kernel, bias = self.files[arch]["predictions"]
            np.testing.assert_array_equal(tm.source_head.kernel.numpy(), kernel)
            np.testing.assert_array_equal(tm.source_head.bias.numpy(), bias)
            self.assertEqual(tm.preprocessing, "caffe")

    def test_source_model_reuses_the_backbone(self):
        tm = self.built["resnet50"]
        x = np.random.default_rng(0).uniform(-1, 1, (2,) + SHAPE).astype("float32")
        features = tm.feature_model()(x, training=False).numpy()
        kernel, bias = self.files["resnet50"]["predictions"]
        logits = tm.source_model()(x, training=False).numpy()
        self.assertAllClose(logits, features @ kernel + bias, rtol=1e-4, atol=1e-4)

    def test_units_follow_the_blocks(self):
        for arch, tm in self.built.items():
            expected = ["conv1"] + [f"conv{s + 2}_block{b + 1}"
                                    for s, n in enumerate(BLOCKS[arch]) for b in range(n)]
            self.assertEqual(tm.units, expected)

    def test_penalty_only_on_inherited_kernels_and_new_head(self):
        alpha, beta = 0.3, 0.02
        rng = np.random.default_rng(3)
        for arch, tm in self.built.items():
            model = tm.model
            self.addCleanup(model.set_weights, model.get_weights())  # other tests read them
            tftransfer.penalize(model, "l2_sp", alpha, beta, new_layers=tm.new_layers)
            expected = 0.0
            for layer in model.layers:
                for variable in layer.weights:  # move every weight, BN statistics included
                    delta = rng.normal(0, 0.01, variable.shape).astype("float32")
                    variable.assign(variable.numpy() + delta)
                    if variable is getattr(layer, "kernel", None):
                        if layer.name == "predictions":
                            expected += beta / 2 * np.sum(variable.numpy().astype(np.float64) ** 2)
                        else:
                            expected += alpha / 2 * np.sum(delta.astype(np.float64) ** 2)
            n_kernels = sum(isinstance(l, keras.layers.Conv2D) for l in model.layers) + 1
            self.assertLen(model.losses, n_kernels)
            self.assertAllClose(float(sum(model.losses)), expected, rtol=1e-4)


class OfflineDownloadTest(tf.test.TestCase):

    def test_no_network_error_names_url_and_leaves_cache_empty(self):
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home)

        def refuse(*args, **kwargs):
            raise OSError("network disabled by the test")

        with mock.patch.dict(os.environ, {"KERAS_HOME": home}), \
                mock.patch.object(socket, "getaddrinfo", refuse), \
                mock.patch.object(socket, "create_connection", refuse):
            with self.assertRaises(FileNotFoundError) as ctx:
                build("resnet50", 5, "imagenet", input_shape=(32, 32, 3))
        message = str(ctx.exception)
        self.assertIn(KERAS_RESNET_URL.format(arch="resnet50"), message)
        self.assertIn("weights=", message)
        leftovers = [os.path.join(d, f) for d, _, files in os.walk(home) for f in files
                     if f != "keras.json"]  # Keras' own config, written when Keras starts
        self.assertEqual(leftovers, [])


class CustomSourceTest(tf.test.TestCase):
    """A custom source (the demo's small ResNet): weights, source head, errors."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.source = small_resnet((12, 12, 1), 5, widths=(4, 8))
        cls.path = os.path.join(cls.tmp.name, "source.weights.h5")
        cls.source.save_weights(cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_source_model_reproduces_the_source_network(self):
        tm = build("small_resnet", 3, "custom", weights=self.path, source_classes=5,
                   input_shape=(12, 12, 1), head_init="glorot",
                   arch_kwargs={"widths": (4, 8)})
        x = np.random.default_rng(0).normal(size=(4, 12, 12, 1)).astype("float32")
        self.assertAllClose(tm.source_model()(x, training=False),
                            self.source(x, training=False), rtol=1e-5, atol=1e-5)
        self.assertEqual(tm.model.output.shape[-1], 3)
        self.assertEqual(tm.units, ["stem", "stage1_block1", "stage2_block1"])
        self.assertEqual(tm.preprocessing, "unit")
        limit = np.sqrt(6 / (8 + 3))  # Glorot uniform bound
        self.assertLessEqual(np.abs(tm.model.get_layer("predictions").kernel.numpy()).max(),
                             limit)

    def test_source_none_inherits_nothing(self):
        tm = build("small_resnet", 3, "none", input_shape=(12, 12, 1),
                   arch_kwargs={"widths": (4, 8)})
        with_weights = [l.name for l in tm.model.layers if l.weights]
        self.assertEqual(tm.new_layers, with_weights)
        self.assertEqual(tm.inherited_layers, [])
        self.assertIsNone(tm.source_head)
        with self.assertRaisesRegex(ValueError, "No source head"):
            tm.source_model()

    def test_wrong_source_classes_is_a_clear_error(self):
        with self.assertRaisesRegex(ValueError, "source_classes"):
            build("small_resnet", 3, "custom", weights=self.path, source_classes=4,
                  input_shape=(12, 12, 1), arch_kwargs={"widths": (4, 8)})

    def test_bad_arguments(self):
        cases = [
            (dict(arch="vgg16", num_classes=3, source="none"), ValueError, "Unknown arch"),
            (dict(arch="small_resnet", num_classes=3, source="jft"), ValueError,
             "Unknown source"),
            (dict(arch="small_resnet", num_classes=0, source="none"), ValueError,
             "num_classes"),
            (dict(arch="small_resnet", num_classes=3, source="none", head_init="zeros"),
             ValueError, "head_init"),
            (dict(arch="small_resnet", num_classes=3, source="custom"), ValueError,
             "source_classes"),
            (dict(arch="small_resnet", num_classes=3, source="imagenet", weights="/nope.h5"),
             FileNotFoundError, "does not exist"),
            (dict(arch="small_resnet", num_classes=3, source="imagenet"), ValueError,
             "weights="),
            (dict(arch="small_resnet", num_classes=3, source="none", layout="torch"),
             ValueError, "single layout"),
            (dict(arch="resnet50", num_classes=3, source="none", layout="caffe"), ValueError,
             "Unknown layout"),
            (dict(arch="small_resnet", num_classes=3, source="none", weights=self.path),
             ValueError, "random initialisation"),
        ]
        for kwargs, error, pattern in cases:
            with self.subTest(**{k: str(v) for k, v in kwargs.items()}):
                with self.assertRaisesRegex(error, pattern):
                    build(input_shape=(12, 12, 1), **kwargs)
