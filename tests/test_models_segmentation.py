"""tftransfer.models.segmentation on small inputs: weights copied exactly, the output-stride
32 twin equals the classification features, dilation where DeepLab puts it, the penalty
against NumPy, the batch-norm modes, inputs of any size, saving, errors. (The 512x1024
builds: test_models_segmentation_large.py; on every backend: ..._backends.py.)"""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tftransfer.models.batch_norm import FrozenStatsBatchNormalization
from tftransfer.models.segmentation import (BATCH_NORM_MODES, HEADS, SegmentationModel,
                                            build_segmentation)
from tftransfer.models.small_resnet import small_resnet

from tests.test_models_build import file_arrays

WIDTHS = (8, 16, 32)
SMALL = {"widths": WIDTHS}
SHAPE = (32, 32, 3)


def conv_kernels(model, names):
    """{layer name: kernel as float64} of the convolution layers of ``model`` in ``names``."""
    return {layer.name: layer.kernel.numpy().astype(np.float64) for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and layer.name in names}


class SmallSourceTestCase(tf.test.TestCase):
    """A small ResNet source network (5 classes) saved to a local weights file."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        keras.utils.set_random_seed(0)
        cls.source = small_resnet(SHAPE, 5, widths=WIDTHS)
        for layer in cls.source.layers:  # BN statistics away from 0/1 so copying shows
            if isinstance(layer, keras.layers.BatchNormalization):
                n = layer.moving_mean.shape[0]
                layer.moving_mean.assign(np.linspace(-0.5, 0.5, n))
                layer.moving_variance.assign(np.linspace(0.5, 2.0, n))
        cls.path = os.path.join(cls.tmp.name, "small.weights.h5")
        cls.source.save_weights(cls.path)
        cls.source_names = {layer.name for layer in cls.source.layers if layer.weights}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def small(self, head="fcn", **kwargs):
        kwargs = {"input_shape": SHAPE, "output_stride": 4, "seed": 1, **kwargs}
        return build_segmentation(head, "small_resnet", 3, "custom", weights=self.path,
                                  source_classes=5, arch_kwargs=SMALL, **kwargs)


class SmallResNetTest(SmallSourceTestCase):

    def test_backbone_equals_the_file_and_the_classification_features(self):
        arrays = file_arrays(self.path, self.source)
        x = np.random.default_rng(0).uniform(0, 1, (2,) + SHAPE).astype("float32")
        features = keras.Model(self.source.input, self.source.get_layer("avg_pool").input)
        for head in HEADS:
            sm = self.small(head)
            self.assertEqual(sorted(sm.inherited_layers),
                             sorted(self.source_names - {"predictions"}))
            for name in sm.inherited_layers:
                for value, expected in zip(sm.model.get_layer(name).get_weights(), arrays[name]):
                    np.testing.assert_array_equal(value, expected, err_msg=name)
            twin = keras.Model(sm.model.input, sm.model.get_layer("stage3_block1_out").output)
            self.assertAllClose(twin(x, training=False), features(x, training=False),
                                rtol=1e-5, atol=1e-5)
            self.assertEqual(sm.units, ["stem", "stage1_block1", "stage2_block1",
                                        "stage3_block1"])
            self.assertEqual((sm.preprocessing, sm.output_stride, sm.head), ("unit", 4, head))

    def test_output_shapes_and_float32_logits_at_every_output_stride(self):
        x = np.zeros((2,) + SHAPE, "float32")
        for head in HEADS:
            for stride in (4, 2, 1):
                with self.subTest(head=head, stride=stride):
                    sm = self.small(head, output_stride=stride)
                    features = sm.model.get_layer("stage3_block1_out").output
                    self.assertEqual(tuple(features.shape[1:3]), (32 // stride, 32 // stride))
                    y = sm.model(x, training=False)
                    self.assertEqual(tuple(y.shape), (2, 32, 32, 3))
                    self.assertEqual(y.dtype, tf.float32)

    def test_auxiliary_head(self):
        sm = self.small("pspnet")
        self.assertEqual(sm.aux_weight, 0.4)
        self.assertLen(sm.train_model.outputs, 2)
        self.assertIn("aux_classifier", sm.new_layers)
        self.assertNotIn("aux_classifier", [l.name for l in sm.model.layers])
        # the auxiliary head reads the penultimate stage
        aux_in = sm.train_model.get_layer("aux_fcn_conv").input
        self.assertIs(aux_in, sm.train_model.get_layer("stage2_block1_out").output)
        shared = {id(l) for l in sm.model.layers}
        self.assertTrue(all(id(sm.train_model.get_layer(l.name)) in shared
                            for l in sm.model.layers))
        off = self.small("pspnet", aux_weight=0)
        self.assertIs(off.train_model, off.model)
        self.assertFalse([n for n in off.new_layers if n.startswith("aux_")])
        fcn = self.small("fcn")
        self.assertEqual(fcn.aux_weight, 0.0)
        self.assertIs(fcn.train_model, fcn.model)

    def test_source_none_makes_every_layer_new(self):
        sm = build_segmentation("deeplab", "small_resnet", 4, "none", input_shape=SHAPE,
                                output_stride=4, arch_kwargs=SMALL)
        self.assertEqual(sm.inherited_layers, [])
        self.assertEqual(sorted(sm.new_layers),
                         sorted(l.name for l in sm.train_model.layers if l.weights))
        self.assertIsNone(sm.weights)

    def test_dilation_follows_deeplab(self):
        sm = build_segmentation("resnet", "small_resnet", 3, "none", input_shape=SHAPE,
                                output_stride=1, arch_kwargs={"widths": WIDTHS,
                                                              "blocks_per_stage": 2})
        conv = {l.name: l for l in sm.model.layers if isinstance(l, keras.layers.Conv2D)}
        # stage2 would stride: stride 1, rate 1 in block 1, rate 2 after; stage3: 2 then 4
        expected = {"stage2_block1_1_conv": (1, 1), "stage2_block1_2_conv": (1, 1),
                    "stage2_block2_1_conv": (1, 2), "stage3_block1_1_conv": (1, 2),
                    "stage3_block1_2_conv": (1, 2), "stage3_block2_2_conv": (1, 4),
                    "stage1_block1_1_conv": (1, 1)}
        for name, (stride, rate) in expected.items():
            self.assertEqual((conv[name].strides, conv[name].dilation_rate),
                             ((stride, stride), (rate, rate)), msg=name)


class PenaltyTest(SmallSourceTestCase):

    def test_sp_on_inherited_kernels_l2_on_new_ones(self):
        alpha, beta = 0.3, 0.02
        for head in ("pspnet", "deeplab"):
            sm = self.small(head)
            model = sm.train_model
            inherited = conv_kernels(model, self.source_names)  # the source's own layers
            w0 = dict(inherited)
            plan = sm.penalize("l2_sp", alpha, beta)
            rng = np.random.default_rng(2)
            for variable in model.weights:  # move every weight, BN statistics included
                variable.assign(variable.numpy() + rng.normal(0, 0.01, variable.shape))
            new_names = {l.name for l in model.layers} - self.source_names
            new = conv_kernels(model, new_names)
            moved = conv_kernels(model, self.source_names)
            expected = (alpha / 2 * sum(np.sum((moved[n] - w0[n]) ** 2) for n in moved)
                        + beta / 2 * sum(np.sum(w ** 2) for w in new.values()))
            self.assertLen(model.losses, len(inherited) + len(new))
            self.assertLen(plan.inherited, len(inherited))
            self.assertAllClose(float(sum(model.losses)), expected, rtol=1e-5)
            self.assertIn("aspp_pool_conv" if head == "deeplab" else "aux_classifier", new)


class BatchNormModeTest(SmallSourceTestCase):

    def step(self, sm):
        """One SGD step of per-pixel cross-entropy on random images and masks."""
        rng = np.random.default_rng(5)
        x = rng.uniform(0, 1, (4,) + SHAPE).astype("float32")
        y = rng.integers(0, 3, (4,) + SHAPE[:2])
        sm.model.compile(optimizer=keras.optimizers.SGD(0.5),
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        sm.model.fit(x, y, batch_size=4, epochs=1, verbose=0)

    def backbone_bn(self, sm):
        return [l for l in sm.model.layers if isinstance(l, keras.layers.BatchNormalization)
                and l.name in self.source_names]

    def test_each_mode_does_what_it_says(self):
        for mode in BATCH_NORM_MODES:
            with self.subTest(mode=mode):
                sm = self.small("fcn", batch_norm=mode)
                bns = self.backbone_bn(sm)
                self.assertLen(bns, len([l for l in self.source.layers if isinstance(
                    l, keras.layers.BatchNormalization)]))
                before = {l.name: [w.numpy().copy() for w in l.weights]
                          for l in sm.model.layers if l.weights}
                self.step(sm)
                after = {l.name: [w.numpy() for w in l.weights]
                         for l in sm.model.layers if l.weights}

                def changed(name, index):
                    return not np.array_equal(before[name][index], after[name][index])

                head_bn = "seg_fcn_bn"
                self.assertTrue(changed("seg_classifier", 0))
                self.assertTrue(changed(head_bn, 2))  # new BN layers are always trained
                for bn in bns:  # gamma, beta, moving_mean, moving_variance
                    stats = changed(bn.name, 2) or changed(bn.name, 3)
                    scale = changed(bn.name, 0) or changed(bn.name, 1)
                    if mode == "frozen":
                        self.assertFalse(stats or scale, bn.name)
                        self.assertFalse(bn.trainable)
                    elif mode == "frozen_stats":
                        self.assertIsInstance(bn, FrozenStatsBatchNormalization)
                        self.assertFalse(stats, bn.name)
                        self.assertTrue(scale, bn.name)
                    else:
                        self.assertTrue(stats and scale, bn.name)
                self.assertTrue(changed("stem_conv", 0))  # convolutions train in every mode

    def test_frozen_stats_normalises_with_the_moving_statistics(self):
        layer = FrozenStatsBatchNormalization(epsilon=1e-3)
        x = np.random.default_rng(0).normal(2.0, 3.0, (8, 4, 4, 2)).astype("float32")
        layer.build(x.shape)
        layer.moving_mean.assign([1.0, -1.0])
        layer.moving_variance.assign([4.0, 0.25])
        layer.gamma.assign([2.0, 0.5])
        layer.beta.assign([0.1, -0.2])
        want = (np.array([2.0, 0.5]) * (x - np.array([1.0, -1.0]))
                / np.sqrt(np.array([4.0, 0.25]) + 1e-3) + np.array([0.1, -0.2]))
        self.assertAllClose(layer(x, training=True), want, rtol=1e-5, atol=1e-5)
        self.assertAllClose(layer.moving_mean, [1.0, -1.0])


class AnySizeTest(SmallSourceTestCase):

    def test_unknown_size_equals_the_fixed_size_model(self):
        x = np.random.default_rng(1).uniform(0, 1, (1, 24, 40, 3)).astype("float32")
        for head in ("pspnet", "deeplab"):
            dynamic = self.small(head, input_shape=(None, None, 3), output_stride=2)
            fixed = self.small(head, input_shape=(24, 40, 3), output_stride=2)
            fixed.model.set_weights(dynamic.model.get_weights())
            got = dynamic.model.predict(x, verbose=0)  # a tf.function: sizes unknown
            self.assertEqual(got.shape, (1, 24, 40, 3))
            self.assertAllClose(got, fixed.model(x, training=False), rtol=1e-4, atol=1e-4)
            self.assertEqual(dynamic.model.predict(x[:, :17, :29], verbose=0).shape,
                             (1, 17, 29, 3))


class SavingTest(SmallSourceTestCase):

    def test_keras_file_round_trip(self):
        sm = self.small("pspnet", batch_norm="frozen_stats", input_shape=(None, None, 3))
        path = os.path.join(self.get_temp_dir(), "seg.keras")
        sm.train_model.save(path)
        back = keras.models.load_model(path)
        x = np.random.default_rng(0).uniform(0, 1, (1, 32, 24, 3)).astype("float32")
        for a, b in zip(back(x, training=False), sm.train_model(x, training=False)):
            self.assertAllClose(a, b, rtol=1e-5, atol=1e-5)
        self.assertIsInstance(back.get_layer("stem_bn"), FrozenStatsBatchNormalization)

    def test_saved_model_export_serves_any_size(self):
        sm = self.small("deeplab", input_shape=(None, None, 3))
        export_dir = os.path.join(self.get_temp_dir(), "export")
        sm.model.export(export_dir, verbose=False)
        served = tf.saved_model.load(export_dir)
        for size in ((32, 24), (20, 36)):
            x = np.random.default_rng(0).uniform(0, 1, (1,) + size + (3,)).astype("float32")
            got = served.serve(x)
            self.assertEqual(tuple(got.shape), (1,) + size + (3,))
            self.assertAllClose(got, sm.model(x, training=False), rtol=1e-5, atol=1e-5)


class ErrorsTest(SmallSourceTestCase):

    def test_bad_arguments_name_the_fix(self):
        cases = [({"head": "unet"}, "Unknown segmentation head"),
                 ({"output_stride": 8}, r"output strides are \[1, 2, 4\]"),
                 ({"batch_norm": "sync"}, "Unknown batch_norm mode"),
                 ({"aux_weight": -1}, "aux_weight must be >= 0"),
                 ({"head_init": "zeros"}, "head_init")]
        for kwargs, pattern in cases:
            with self.subTest(**{k: str(v) for k, v in kwargs.items()}):
                with self.assertRaisesRegex(ValueError, pattern):
                    self.small(**kwargs)
        with self.assertRaisesRegex(ValueError, "no segmentation backbone"):
            build_segmentation("fcn", "efficientnet_lite0", 3, "none", input_shape=SHAPE)
        with self.assertRaisesRegex(ValueError, r"output strides are \[4, 8, 16, 32\]"):
            build_segmentation("fcn", "resnet50", 3, "none", input_shape=SHAPE,
                               output_stride=12)


class ResNet50Test(tf.test.TestCase):
    """Both layouts of ResNet-50 from local files saved with random weights."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from tftransfer.models.resnet_torch import resnet_torch
        cls.tmp = tempfile.TemporaryDirectory()
        cls.shape = (64, 64, 3)
        cls.sources, cls.paths = {}, {}
        for layout, make in (("keras", lambda: keras.applications.ResNet50(
                weights=None, input_shape=cls.shape, classes=1000)),
                             ("torch", lambda: resnet_torch(50, cls.shape, classes=1000))):
            keras.utils.set_random_seed(3)
            cls.sources[layout] = make()
            cls.paths[layout] = os.path.join(cls.tmp.name, f"{layout}.weights.h5")
            cls.sources[layout].save_weights(cls.paths[layout])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_file_loads_exactly_and_stride_32_equals_the_classifier_features(self):
        x = np.random.default_rng(0).uniform(-50, 50, (1,) + self.shape).astype("float32")
        for layout, last in (("keras", "conv5_block3_out"), ("torch", "stage4_block3_out")):
            source = self.sources[layout]
            sm = build_segmentation("resnet", "resnet50", 4, "custom", weights=self.paths[layout],
                                    source_classes=1000, layout=layout, input_shape=self.shape,
                                    output_stride=32)
            arrays = file_arrays(self.paths[layout], source)
            names = {l.name for l in source.layers if l.weights} - {"predictions"}
            self.assertEqual(sorted(sm.inherited_layers), sorted(names))
            for name in names:
                for value, expected in zip(sm.model.get_layer(name).get_weights(), arrays[name]):
                    np.testing.assert_array_equal(value, expected, err_msg=name)
            twin = keras.Model(sm.model.input, sm.model.get_layer(last).output)
            features = keras.Model(source.input, source.get_layer("avg_pool").input)
            self.assertAllClose(twin(x, training=False), features(x, training=False),
                                rtol=1e-4, atol=1e-4)
            self.assertEqual(sm.new_layers, ["seg_classifier", "logits"])
            self.assertEqual(sm.preprocessing, "caffe" if layout == "keras" else "torch")

    def test_output_stride_8_dilates_the_last_two_stages(self):
        for layout, (c4, c5) in (("keras", ("conv4", "conv5")), ("torch", ("stage3", "stage4"))):
            sm = build_segmentation("fcn", "resnet50", 4, "custom", weights=self.paths[layout],
                                    source_classes=1000, layout=layout,
                                    input_shape=self.shape, output_stride=8)
            conv = {l.name: l for l in sm.model.layers if isinstance(l, keras.layers.Conv2D)}
            stride_conv = "_1_conv" if layout == "keras" else "_2_conv"
            expected = {f"{c4}_block1{stride_conv}": ((1, 1), (1, 1)),
                        f"{c4}_block1_0_conv": ((1, 1), (1, 1)),
                        f"{c4}_block1_2_conv": ((1, 1), (1, 1)),
                        f"{c4}_block2_2_conv": ((1, 1), (2, 2)),
                        f"{c4}_block6_2_conv": ((1, 1), (2, 2)),
                        f"{c5}_block1_2_conv": ((1, 1), (2, 2)),
                        f"{c5}_block3_2_conv": ((1, 1), (4, 4))}
            for name, want in expected.items():
                self.assertEqual((conv[name].strides, conv[name].dilation_rate), want,
                                 msg=name)
            self.assertEqual(tuple(sm.model.get_layer(f"{c5}_block3_out").output.shape),
                             (None, 8, 8, 2048))
            self.assertEqual(tuple(sm.model(np.zeros((1,) + self.shape)).shape), (1, 64, 64, 4))


class HeadOptionsTest(SmallSourceTestCase):

    def test_float32_logits_under_mixed_precision(self):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        self.addCleanup(keras.mixed_precision.set_global_policy, "float32")
        sm = self.small("pspnet", input_shape=(None, None, 3))
        self.assertEqual(sm.model.get_layer("stage3_block1_out").output.dtype, "bfloat16")
        logits, aux = sm.train_model(np.zeros((2,) + SHAPE, "float32"), training=True)
        self.assertEqual((logits.dtype, aux.dtype), (tf.float32, tf.float32))

    def test_synchronized_batch_norm_where_batch_norm_is_trained(self):
        for mode in BATCH_NORM_MODES:
            sm = self.small("deeplab", batch_norm=mode, synchronized_bn=True)
            for layer in sm.model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    trained = layer.name not in self.source_names or mode == "train"
                    self.assertEqual(layer.synchronized, trained, msg=(mode, layer.name))

    def test_seed_fixes_the_new_layers(self):
        a, b = self.small("deeplab", seed=7), self.small("deeplab", seed=7)
        c = self.small("deeplab", seed=8)
        for name in ("aspp_atrous2_conv", "seg_classifier"):
            self.assertAllEqual(a.model.get_layer(name).kernel, b.model.get_layer(name).kernel)
            self.assertNotAllClose(a.model.get_layer(name).kernel,
                                   c.model.get_layer(name).kernel)
        head = a.model.get_layer("seg_classifier")
        self.assertAllEqual(head.bias, np.zeros(3))
        glorot = self.small("resnet", head_init="glorot").model.get_layer("seg_classifier")
        self.assertLessEqual(np.abs(glorot.kernel.numpy()).max(), np.sqrt(6 / (32 + 3)))


class KerasHubASPPTest(SmallSourceTestCase):
    """Our ASPP computes KerasHub's DeepLabV3 SpatialPyramidPooling with the same weights."""

    def test_same_function_as_kerashub(self):
        try:
            from keras_hub.src.models.deeplab_v3.deeplab_v3_layers import SpatialPyramidPooling
        except ImportError:
            self.skipTest("keras-hub is not installed")
        sm = self.small("deeplab", output_stride=2, input_shape=(None, None, 3))
        model = sm.model
        rng = np.random.default_rng(4)
        for layer in model.layers:  # non-trivial statistics in every head BN
            if isinstance(layer, keras.layers.BatchNormalization) and layer.name.startswith("aspp"):
                for w in layer.weights:
                    w.assign(rng.uniform(0.5, 1.5, w.shape))
                layer.epsilon = 1e-3  # KerasHub's batch norm keeps Keras' default
        rates = [model.get_layer(f"aspp_atrous{i}_conv").dilation_rate[0] for i in (1, 2, 3)]
        self.assertEqual(rates, [6, 12, 18])  # (6, 12, 18) * (4 / 2) / 2 on the small ResNet
        features = model.get_layer("stage3_block1_out").output
        ours = keras.Model(model.input, [features, model.get_layer("aspp_project_relu").output])
        x = rng.uniform(0, 1, (2, 40, 24, 3)).astype("float32")
        f, want = ours(x, training=False)
        spp = SpatialPyramidPooling(rates, num_channels=32)
        spp.build(f.shape)
        names = ["aspp_1x1", "aspp_atrous1", "aspp_atrous2", "aspp_atrous3", "aspp_pool"]
        for branch, name in zip(spp.aspp_parallel_channels, names):
            convs = [l for l in branch.layers if l.weights]
            convs[0].set_weights(model.get_layer(name + "_conv").get_weights())
            convs[1].set_weights(model.get_layer(name + "_bn").get_weights())
        convs = [l for l in spp.projection.layers if l.weights]
        convs[0].set_weights(model.get_layer("aspp_project_conv").get_weights())
        convs[1].set_weights(model.get_layer("aspp_project_bn").get_weights())
        self.assertAllClose(spp(f, training=False), want, rtol=1e-4, atol=1e-4)
