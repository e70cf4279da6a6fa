"""The four heads on ResNet-101 at Cityscapes' 512x1024 (random weights, no download):
output of the input's size and classes, the file's weights in the backbone, the penalty on
the right kernels; one forward at 64x128 per head (a 512x1024 forward is too slow here).

The fixed-size builds check shapes, names and units only, so they are built with
shape-only variables (``keras.StatelessScope``, as ``tftransfer.training.preflight``
builds its source network): the same layers and graph, without initialising 42M weights
per build (about 2 s per build instead of 7); the builds from the file keep their values."""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tests.test_models_build import file_arrays
from tftransfer.models.segmentation import HEADS, build_segmentation
from tftransfer.training.preflight import shape_only_variables

CITYSCAPES = (512, 1024, 3)
K = 19


class ResNet101At512x1024Test(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        keras.utils.set_random_seed(0)
        source = keras.applications.ResNet101(weights=None, input_shape=(64, 64, 3),
                                              classes=1000)
        cls.path = os.path.join(cls.tmp.name, "resnet101_random.weights.h5")
        source.save_weights(cls.path)
        cls.arrays = file_arrays(cls.path, source)
        cls.source_names = set(cls.arrays) - {"predictions"}
        del source

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_every_head_from_random_init(self):
        for head in HEADS:
            with self.subTest(head=head):
                with shape_only_variables():
                    sm = build_segmentation(head, "resnet101", K, "none",
                                            input_shape=CITYSCAPES, output_stride=8)
                self.assertEqual(tuple(sm.model.output.shape), (None, 512, 1024, K))
                self.assertEqual(sm.model.output.dtype, "float32")
                features = sm.model.get_layer("conv5_block3_out").output
                self.assertEqual(tuple(features.shape), (None, 64, 128, 2048))
                self.assertEqual(sm.inherited_layers, [])
                self.assertLen(sm.units, 1 + 3 + 4 + 23 + 3)
                if head == "pspnet":
                    self.assertEqual([tuple(o.shape) for o in sm.train_model.outputs],
                                     [(None, 512, 1024, K)] * 2)

    def test_every_head_from_an_imagenet_layout_file(self):
        x = np.random.default_rng(0).uniform(-100, 100, (1, 64, 128, 3)).astype("float32")
        for head in HEADS:
            with self.subTest(head=head):
                sm = build_segmentation(head, "resnet101", K, "imagenet", weights=self.path,
                                        input_shape=(None, None, 3), output_stride=8, seed=0)
                spec = sm.model.compute_output_spec(keras.KerasTensor((1,) + CITYSCAPES))
                self.assertEqual(tuple(spec.shape), (1, 512, 1024, K))
                self.assertEqual(sorted(sm.inherited_layers), sorted(self.source_names))
                for name in sm.inherited_layers:
                    for value, want in zip(sm.model.get_layer(name).get_weights(),
                                           self.arrays[name]):
                        np.testing.assert_array_equal(value, want, err_msg=name)
                y = sm.model(x, training=False)
                self.assertEqual(tuple(y.shape), (1, 64, 128, K))
                self.assertTrue(np.all(np.isfinite(y)))
                if head == "pspnet":
                    self.penalty_matches_numpy(sm)

    def penalty_matches_numpy(self, sm):
        alpha, beta = 0.1, 0.01
        model = sm.train_model
        convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
        w0 = {l.name: l.kernel.numpy().astype(np.float64) for l in convs}
        sm.penalize("l2_sp", alpha, beta)
        rng = np.random.default_rng(1)
        expected = 0.0
        for layer in convs:
            delta = rng.normal(0, 0.001, layer.kernel.shape).astype("float32")
            layer.kernel.assign(layer.kernel.numpy() + delta)
            w = layer.kernel.numpy().astype(np.float64)
            if layer.name in self.source_names:
                expected += alpha / 2 * np.sum((w - w0[layer.name]) ** 2)
            else:
                expected += beta / 2 * np.sum(w ** 2)
        self.assertLen(model.losses, len(convs))
        self.assertAllClose(float(sum(model.losses)), expected, rtol=1e-4)

    def test_torch_layout_builds_too(self):
        with shape_only_variables():
            sm = build_segmentation("deeplab", "resnet101", K, "none", layout="torch",
                                    input_shape=CITYSCAPES, output_stride=16)
        self.assertEqual(tuple(sm.model.output.shape), (None, 512, 1024, K))
        self.assertEqual(tuple(sm.model.get_layer("stage4_block3_out").output.shape),
                         (None, 32, 64, 2048))
        rates = [sm.model.get_layer(f"aspp_atrous{i}_conv").dilation_rate[0] for i in (1, 2, 3)]
        self.assertEqual(rates, [6, 12, 18])
        self.assertEqual(sm.preprocessing, "torch")
