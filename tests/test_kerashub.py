"""tftransfer.penalize on a KerasHub backbone loaded offline from a local preset directory.

A tiny ``keras_hub.models.ResNetBackbone`` (random weights) is saved with
``save_to_preset(dir)`` and loaded back by path with ``Backbone.from_preset(dir)``; the
penalty must land on exactly its convolution kernels plus the new head, and ``fit`` must
train. Skipped when keras_hub is not installed (it is the optional ``[kerashub]`` extra).
"""
import os
import unittest
import warnings

import keras
import numpy as np

import tftransfer
import tftransfer.models

from tests.backend_testutil import TestCase, numpy, total

try:
    import keras_hub
except ImportError:  # the optional [kerashub] extra
    keras_hub = None


def tiny_resnet_backbone():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 8],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(16, 16, 3))


@unittest.skipIf(keras_hub is None, "keras_hub is not installed (pip install .[kerashub])")
class KerasHubPresetTest(TestCase):

    def load_local_preset(self):
        keras.utils.set_random_seed(0)
        preset = os.path.join(self.get_temp_dir(), "tiny_resnet")
        tiny_resnet_backbone().save_to_preset(preset)
        return keras_hub.models.Backbone.from_preset(preset)  # a path: no download

    def test_penalty_on_exactly_the_conv_kernels_and_fit_trains(self):
        backbone = self.load_local_preset()
        conv_kernels = sorted(
            layer.kernel.path for layer in backbone._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.Conv2D))
        self.assertGreaterEqual(len(conv_kernels), 6)
        inputs = keras.Input((16, 16, 3))
        features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
        model = keras.Model(inputs, keras.layers.Dense(3, name="head")(features))
        w0 = {v.path: numpy(v).astype(np.float64) for v in model.trainable_variables}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plan = tftransfer.penalize(model, "l2_sp", 0.5, 0.01, ["head"])
        self.assertEqual(sorted(plan.inherited), conv_kernels)
        self.assertEqual(plan.new, ["head/kernel"])
        # The backbone rebuilds itself from its arguments: a .keras file loses the penalty.
        self.assertTrue(any("WITHOUT its penalty" in str(w.message) for w in caught))

        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 16, 16, 3)).astype(np.float32)
        y = (x[:, :8].mean(axis=(1, 2, 3)) > 0).astype(np.int64)
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(x, y, batch_size=16, epochs=6, verbose=0).history["loss"]
        self.assertLess(history[-1], history[0])
        w = {v.path: numpy(v).astype(np.float64) for v in model.trainable_variables}
        want = 0.01 / 2 * np.sum(w["head/kernel"] ** 2) + sum(
            0.5 / 2 * np.sum((w[p] - w0[p]) ** 2) for p in conv_kernels)
        self.assertGreater(want, 0.01 / 2 * np.sum(w["head/kernel"] ** 2))
        self.assertAllClose(total(model.losses), want, rtol=1e-5)

    def test_resume_recipe_penalize_then_load_weights(self):
        """The documented way back for models rebuilt from arguments (docs/backends.md)."""
        backbone = self.load_local_preset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tftransfer.penalize(backbone, "l2_sp", 0.5, 0.0)
            for v in backbone.trainable_variables:
                v.assign(v + 0.01)
            path = os.path.join(self.get_temp_dir(), "fine_tuned.weights.h5")
            backbone.save_weights(path)
            again = self.load_local_preset()  # the same pretrained preset
            tftransfer.penalize(again, "l2_sp", 0.5, 0.0)
            again.load_weights(path)
        self.assertGreater(total(backbone.losses), 0)
        self.assertAllClose(total(again.losses), total(backbone.losses), rtol=1e-5)


@unittest.skipIf(keras_hub is None, "keras_hub is not installed (pip install .[kerashub])")
class BuildFromPresetTest(TestCase):
    """``tftransfer.models.build("kerashub:<dir>", ...)`` on presets saved by the test."""

    SCALE, OFFSET = np.array([0.01, 0.02, 0.03]), np.array([-1.0, -2.0, -3.0])

    def classifier_preset(self):
        keras.utils.set_random_seed(0)
        converter = keras_hub.layers.ResNetImageConverter(
            image_size=(16, 16), scale=self.SCALE.tolist(), offset=self.OFFSET.tolist())
        classifier = keras_hub.models.ResNetImageClassifier(
            backbone=tiny_resnet_backbone(), num_classes=5,
            preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(converter))
        preset = os.path.join(self.get_temp_dir(), "classifier")
        classifier.save_to_preset(preset)
        return classifier, preset

    def test_classifier_preset_gives_head_split_source_head_and_scaling(self):
        classifier, preset = self.classifier_preset()
        tm = tftransfer.models.build(f"kerashub:{preset}", 3, "imagenet",
                                     input_shape=(16, 16, 3), seed=1)
        self.assertEqual((tm.new_layers, tm.preprocessing, tm.source_head.units),
                         (["predictions"], "raw", 5))
        x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
        # The source task: the preset's classifier on its converter's x * scale + offset.
        want = numpy(classifier(x * self.SCALE + self.OFFSET))
        self.assertAllClose(numpy(tm.source_model()(x)), want, rtol=1e-4, atol=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the .keras warning of models built from args
            plan = tm.penalize("l2_sp", 0.1, 0.01)
        conv_kernels = sorted(
            layer.kernel.path for layer in tm.model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.Conv2D))
        self.assertEqual(sorted(plan.inherited), conv_kernels)
        self.assertEqual(plan.new, ["predictions/kernel"])

    def test_backbone_preset_has_no_source_head_and_scales_by_255(self):
        keras.utils.set_random_seed(0)
        preset = os.path.join(self.get_temp_dir(), "backbone")
        tiny_resnet_backbone().save_to_preset(preset)
        tm = tftransfer.models.build(f"kerashub:{preset}", 3, "imagenet",
                                     input_shape=(16, 16, 3))
        self.assertIsNone(tm.source_head)
        rescaling = tm.model.get_layer("preset_rescaling")
        self.assertAllClose(np.asarray(rescaling.scale), np.full(3, 1 / 255))
        with self.assertRaisesRegex(ValueError, "the KerasHub preset is the source network"):
            tftransfer.models.build(f"kerashub:{preset}", 3, "imagenet", weights="w.h5")


if __name__ == "__main__":
    unittest.main()
