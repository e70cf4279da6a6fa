"""Small fixtures shared by the analysis tests: a tiny ResNet, tiny data, tool loading."""
import importlib
import os

import keras
import numpy as np
import pandas as pd

from tftransfer.models.small_resnet import small_resnet


def tiny_resnet(seed=0, num_classes=3, input_shape=(8, 8, 1), widths=(4, 8)):
    """A two-stage small ResNet on 8x8 inputs with non-trivial batch-norm statistics."""
    keras.utils.set_random_seed(seed)
    model = small_resnet(input_shape, num_classes=num_classes, widths=widths)
    rng = np.random.default_rng(seed)
    for v in model.non_trainable_variables:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    return model


def tiny_data(n=24, num_classes=3, shape=(8, 8, 1), seed=0):
    """Images whose mean brightness depends on the label (learnable), and int labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.normal(size=(n, *shape)) + y[:, None, None, None]
    return x.astype("float32"), y.astype("int64")


def load_tool(name):
    """The module ``tools.<name>`` (its ``main(argv)`` runs the tool)."""
    return importlib.import_module(f"tools.{name}")


def assert_png(test, path):
    """The file exists, is a non-empty PNG."""
    test.assertTrue(os.path.exists(path), path)
    with open(path, "rb") as f:
        test.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
    test.assertGreater(os.path.getsize(path), 1000)


def assert_finite_csv(test, path, columns):
    """The CSV exists, has rows, and the named numeric columns are all finite."""
    frame = pd.read_csv(path)
    test.assertGreater(len(frame), 0, path)
    for column in columns:
        test.assertTrue(np.all(np.isfinite(frame[column].to_numpy(np.float64))), column)
    return frame
