"""tftransfer.models.lr_multipliers: each group moves by lr * multiplier * gradient."""
import contextlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from tftransfer.models.build import build
from tftransfer.models.lr_multipliers import (group_multipliers, multiplier_class,
                                              with_lr_multipliers)

SHAPE = (8, 8, 1)
LR = 0.1
GROUPS = [("stem", 0.0), (["stage1_block1"], 0.01), ("stage2_block1", 0.1),
          ("predictions", 0.5)]
GROUP_OF = {"stem_": 0.0, "stage1_block1_": 0.01, "stage2_block1_": 0.1, "predictions": 0.5}
RNG = np.random.default_rng(0)
X = RNG.normal(size=(8,) + SHAPE).astype("float32")
Y = RNG.integers(0, 3, size=(8,))
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_model():
    return build("small_resnet", 3, "none", input_shape=SHAPE, seed=0,
                 arch_kwargs={"widths": (4, 8)}).model


def expected_multiplier(path):
    return next((m for prefix, m in GROUP_OF.items() if path.startswith(prefix)), 1.0)


def gradients(model):
    """{path: gradient} of the mean cross-entropy, computed independently of the optimizer."""
    with tf.GradientTape() as tape:
        loss = LOSS(Y, model(X, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    return {v.path: g.numpy() for v, g in zip(model.trainable_variables, grads)}


def snapshot(model):
    return {v.path: v.numpy().copy() for v in model.trainable_variables}


class SGDMultiplierTest(tf.test.TestCase):

    def check_steps(self, model, momentum, steps, strategy=None):
        """Runs ``steps`` fit steps, each checked against the NumPy SGD(momentum) update."""
        table = group_multipliers(model, GROUPS)
        self.assertEqual(table, {v.path: expected_multiplier(v.path) for v in model.weights
                                 if expected_multiplier(v.path) != 1.0})
        with strategy.scope() if strategy else contextlib.nullcontext():
            optimizer = with_lr_multipliers(keras.optimizers.SGD(LR, momentum=momentum), table)
            model.compile(optimizer, LOSS, jit_compile=False)
        velocity = {}
        for _ in range(steps):
            w0, g = snapshot(model), gradients(model)
            model.fit(X, Y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
            for v in model.trainable_variables:
                lr = LR * expected_multiplier(v.path)
                velocity[v.path] = momentum * velocity.get(v.path, 0.0) - lr * g[v.path]
                self.assertAllClose(v.numpy(), w0[v.path] + velocity[v.path], rtol=1e-5,
                                    atol=1e-6, msg=v.path)
            moved = {p for p, w in snapshot(model).items() if not np.array_equal(w, w0[p])}
            self.assertEqual(moved, {p for p in w0 if expected_multiplier(p) > 0})

    def test_plain_sgd_with_fit(self):
        self.check_steps(make_model(), momentum=0.0, steps=1)

    def test_momentum_sgd_two_steps_under_mirrored_strategy(self):
        strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
        with strategy.scope():
            model = make_model()
        self.check_steps(model, momentum=0.9, steps=2, strategy=strategy)


# Runs in a fresh process: the two logical CPUs must be configured before TensorFlow starts.
TWO_REPLICAS = """
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from tftransfer.models.lr_multipliers import group_multipliers, with_lr_multipliers
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
x, y = rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 8)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
with strategy.scope():  # no batch norm: per-replica batch statistics would change g
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, name="stem_conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="predictions")(h))
    table = group_multipliers(model, {"stem": 0.01})
    model.compile(with_lr_multipliers(keras.optimizers.SGD(0.1), table), loss)
with tf.GradientTape() as tape:
    value = loss(y, model(x))
g = tape.gradient(value, model.trainable_variables)
w0 = [v.numpy() for v in model.trainable_variables]
model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "steps": {
    v.path: [float(np.abs(v.numpy() - (w - 0.1 * table.get(v.path, 1.0) * gv.numpy())).max()),
             float(np.abs(v.numpy() - w).max())]
    for v, w, gv in zip(model.trainable_variables, w0, g)}}))
"""


class TwoReplicaTest(tf.test.TestCase):

    def test_mirrored_strategy_with_two_replicas(self):
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        done = subprocess.run([sys.executable, "-c", TWO_REPLICAS], capture_output=True,
                              text=True, timeout=300, cwd=repo)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        self.assertEqual(result["replicas"], 2)
        self.assertLen(result["steps"], 4)
        for path, (error, step) in result["steps"].items():
            self.assertGreater(step, 0.0, path)
            self.assertLess(error, 1e-6 + 1e-4 * step, path)


class AdamAndConfigTest(tf.test.TestCase):

    def test_adam_step_is_scaled_not_its_gradient(self):
        steps = {}
        for multiplier in (1.0, 0.25):
            dense = keras.layers.Dense(2, kernel_initializer="ones", name="dense")
            model = keras.Sequential([keras.Input((3,)), dense])
            optimizer = with_lr_multipliers(keras.optimizers.Adam(0.01),
                                            group_multipliers(model, {"dense": multiplier}))
            model.compile(optimizer, "mse", jit_compile=False)
            before = dense.kernel.numpy().copy()
            model.train_on_batch(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"))
            steps[multiplier] = dense.kernel.numpy() - before
        self.assertAllClose(steps[0.25], 0.25 * steps[1.0], rtol=1e-5)

    def test_config_round_trip(self):
        optimizer = with_lr_multipliers(keras.optimizers.SGD(0.02, momentum=0.9),
                                        {"a/kernel": 0.1})
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        self.assertIs(type(restored), multiplier_class(keras.optimizers.SGD))
        self.assertEqual(restored.lr_multipliers, {"a/kernel": 0.1})
        self.assertAllClose(float(restored.learning_rate), 0.02)
        self.assertAllClose(restored.momentum, 0.9)

    def test_bad_input(self):
        model = make_model()
        with self.assertRaisesRegex(ValueError, ">= 0"):
            group_multipliers(model, {"stem": -1.0})
        with self.assertRaisesRegex(ValueError, "two groups"):
            group_multipliers(model, [("stem", 0.1), ("stem_conv", 0.2)])
        with self.assertRaisesRegex(ValueError, "neither a unit nor a layer"):
            group_multipliers(model, {"conv9": 0.1})
        with self.assertRaisesRegex(TypeError, "Optimizer instance"):
            with_lr_multipliers("sgd", {})
        optimizer = with_lr_multipliers(keras.optimizers.SGD(0.1), {"nothing/kernel": 0.1})
        model.compile(optimizer, LOSS, jit_compile=False)
        with self.assertRaisesRegex(ValueError, "none of the paths"):
            model.train_on_batch(X, Y)
