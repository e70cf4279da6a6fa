"""tftransfer.models.freezing and units: exactly the expected variables move in a step."""
import numpy as np
import tensorflow as tf

import keras
from tftransfer.models import freezing
from tftransfer.models.build import build
from tftransfer.models.units import unit_layers, unit_names, unit_of

SHAPE = (8, 8, 1)
MOVING = ("moving_mean", "moving_variance")


def fresh_model():
    return build("small_resnet", 3, "none", input_shape=SHAPE, seed=0,
                 arch_kwargs={"widths": (4, 8, 8)}).model


def one_step(model):
    """{variable path: (before, after)} around one SGD step on a fixed random batch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16,) + SHAPE).astype("float32")
    y = rng.integers(0, 3, size=(16,))
    model.compile(keras.optimizers.SGD(0.5),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)  # XLA compilation would dominate the test time
    before = {v.path: v.numpy().copy() for v in model.weights}
    model.train_on_batch(x, y)
    return {v.path: (before[v.path], v.numpy()) for v in model.weights}


def unchanged(moves):
    return {path for path, (a, b) in moves.items() if np.array_equal(a, b)}


class UnitsTest(tf.test.TestCase):

    def test_unit_of_names(self):
        cases = {"conv1_conv": "conv1", "pool1_pool": "conv1", "conv4_block23_3_bn":
                 "conv4_block23", "stem_conv": "stem", "stage2_block1_shortcut_conv":
                 "stage2_block1", "block12_dw_conv": "block12", "top_conv": "top",
                 "avg_pool": None, "predictions": None, "conv10_block1_out": "conv10_block1"}
        for name, unit in cases.items():
            self.assertEqual(unit_of(name), unit, name)

    def test_units_of_small_resnet(self):
        model = fresh_model()
        self.assertEqual(unit_names(model), ["stem", "stage1_block1", "stage2_block1",
                                             "stage3_block1"])
        self.assertEqual([l.name for l in unit_layers(model, "stem")],
                         ["stem_conv", "stem_bn", "stem_relu"])
        with self.assertRaisesRegex(ValueError, "Unknown unit"):
            unit_layers(model, "stage9_block1")


class FreezeUnitsTest(tf.test.TestCase):

    def expected_frozen(self, moves, prefixes, bn_stats_frozen):
        frozen = set()
        for path in moves:
            layer = path.split("/")[0]
            if layer.startswith(prefixes) and (bn_stats_frozen or
                                               not path.endswith(MOVING)):
                frozen.add(path)
        return frozen

    def test_first_k_units_frozen_bn_statistics_keep_moving(self):
        model = fresh_model()
        self.assertEqual(freezing.freeze_units(model, 2), ["stem", "stage1_block1"])
        moves = one_step(model)
        expected = self.expected_frozen(moves, ("stem_", "stage1_block1_"), False)
        self.assertEqual(unchanged(moves), expected)

    def test_first_k_units_frozen_with_bn_statistics(self):
        model = fresh_model()
        freezing.freeze_units(model, 3, freeze_bn_stats=True)
        moves = one_step(model)
        expected = self.expected_frozen(moves, ("stem_", "stage1_block1_", "stage2_block1_"),
                                        True)
        self.assertEqual(unchanged(moves), expected)

    def test_linear_probe_moves_only_the_head(self):
        model = fresh_model()
        self.assertEqual(freezing.linear_probe(model, ["predictions"]), ["predictions"])
        moves = one_step(model)
        self.assertEqual(set(moves) - unchanged(moves),
                         {"predictions/kernel", "predictions/bias"})

    def test_freeze_batch_norm_keeps_every_bn_variable(self):
        model = fresh_model()
        names = freezing.freeze_batch_norm(model)
        moves = one_step(model)
        bn_paths = {p for p in moves if p.split("/")[0] in names}
        self.assertEqual(unchanged(moves), bn_paths)
        self.assertLen(names, sum(isinstance(l, keras.layers.BatchNormalization)
                                  for l in model.layers))

    def test_bad_arguments(self):
        model = fresh_model()
        for k in (-1, 5, 1.5):
            with self.assertRaisesRegex(ValueError, "k must be an integer"):
                freezing.freeze_units(model, k)
        with self.assertRaisesRegex(ValueError, "not a layer"):
            freezing.linear_probe(model, ["head"])
