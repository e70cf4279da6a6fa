"""build() on the package's own architectures: EfficientNet-Lite0 and the torchvision ResNet."""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tftransfer.models import efficientnet_lite, resnet_torch
from tftransfer.models.build import build


def saved_source(ctor, path, **kwargs):
    """Builds a randomly initialised source network, saves it to ``path``, returns
    ``{layer name: [arrays]}`` of its weights."""
    model = ctor(**kwargs)
    model.save_weights(path)
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


class PackageArchitecturesTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def check_inherited(self, tm, source_weights, source_classes):
        for layer in tm.model.layers:
            if layer.weights and layer.name != "predictions":
                for value, expected in zip(layer.get_weights(), source_weights[layer.name]):
                    np.testing.assert_array_equal(value, expected, err_msg=layer.name)
        kernel, bias = source_weights["predictions"]
        self.assertEqual(kernel.shape[-1], source_classes)
        np.testing.assert_array_equal(tm.source_head.kernel.numpy(), kernel)
        np.testing.assert_array_equal(tm.source_head.bias.numpy(), bias)

    def test_efficientnet_lite0_train_step_at_96(self):
        shape = (96, 96, 3)
        path = os.path.join(self.tmp.name, "lite0.weights.h5")
        source = saved_source(efficientnet_lite.efficientnet_lite0, path, input_shape=shape)
        tm = build("efficientnet_lite0", 5, "imagenet", weights=path, input_shape=shape, seed=0)
        self.check_inherited(tm, source, 1000)
        self.assertEqual(tm.units, efficientnet_lite.unit_names())
        self.assertEqual(tm.preprocessing, efficientnet_lite.PREPROCESSING)
        self.assertEqual(tm.new_layers, ["predictions"])
        self.assertEqual(tuple(tm.model.get_layer("predictions").kernel.shape), (1280, 5))

        tm.penalize("l2_sp", 0.1, 0.01)
        tm.model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                         keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                         run_eagerly=True)  # tracing the graph would take ~15 s of CPU
        rng = np.random.default_rng(0)
        x = tm.preprocess(rng.uniform(0, 255, (2,) + shape).astype("float32"))
        before = [v.numpy().copy() for v in tm.model.trainable_variables]
        loss = tm.model.train_on_batch(x, np.array([0, 3]))
        self.assertTrue(np.isfinite(loss))
        after = [v.numpy() for v in tm.model.trainable_variables]
        self.assertTrue(all(not np.array_equal(a, b) for a, b in zip(before, after)))

    def test_torch_layout_resnet50_from_places365_file(self):
        shape = (32, 32, 3)
        path = os.path.join(self.tmp.name, "r50_places.weights.h5")
        source = saved_source(resnet_torch.resnet_torch, path, depth=50, input_shape=shape,
                              classes=365)
        tm = build("resnet50", 4, "places365", weights=path, layout="torch", input_shape=shape)
        self.check_inherited(tm, source, 365)
        self.assertEqual(tm.units, resnet_torch.unit_names(50))
        self.assertEqual(tm.preprocessing, "torch")
        self.assertEqual(tm.layout, "torch")
        self.assertEqual(tuple(tm.model.get_layer("predictions").kernel.shape), (2048, 4))
