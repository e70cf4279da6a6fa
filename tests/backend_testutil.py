"""Backend-neutral helpers: gradients through the active Keras backend, NumPy asserts.

``value_and_grad(fn, w)`` differentiates ``fn`` (a function of one backend tensor built with
``keras.ops``) at the NumPy array ``w`` with the backend's own autodiff:
``tf.GradientTape``, ``jax.value_and_grad`` or ``torch.autograd``.
"""
import unittest

import keras
import numpy as np

BACKEND = keras.backend.backend()


def value_and_grad(fn, w):
    """``(float(fn(w)), dfn/dw as a NumPy array)`` at ``w`` (cast to float32)."""
    w = np.asarray(w, np.float32)
    if BACKEND == "tensorflow":
        import tensorflow as tf
        var = tf.Variable(w)
        with tf.GradientTape() as tape:
            value = fn(var)
        return float(value), tape.gradient(value, var).numpy()
    if BACKEND == "jax":
        import jax
        value, grad = jax.value_and_grad(lambda x: fn(x))(jax.numpy.asarray(w))
        return float(value), np.asarray(grad)
    if BACKEND == "torch":
        import torch
        x = torch.tensor(w, requires_grad=True)
        value = fn(x)
        value.backward()
        return float(value.detach().cpu()), x.grad.detach().cpu().numpy()
    raise unittest.SkipTest(f"no gradient helper for backend {BACKEND!r}")


def total(losses):
    """``sum(model.losses)`` as a float."""
    return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in losses))


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def skip_unless_tensorflow(reason):
    return unittest.skipUnless(BACKEND == "tensorflow", reason)


class TestCase(unittest.TestCase):
    """``unittest.TestCase`` with NumPy closeness asserts and a temporary directory."""

    def assertAllClose(self, a, b, rtol=1e-6, atol=1e-6, msg=""):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=rtol, atol=atol, err_msg=msg)

    def assertNotAllClose(self, a, b, rtol=1e-6, atol=1e-6):
        self.assertFalse(np.allclose(numpy(a), numpy(b), rtol=rtol, atol=atol))

    def assertAllEqual(self, a, b):
        np.testing.assert_array_equal(numpy(a), numpy(b))

    def get_temp_dir(self):
        import tempfile
        if not hasattr(self, "_tmp"):
            self._tmp = tempfile.TemporaryDirectory()
            self.addCleanup(self._tmp.cleanup)
        return self._tmp.name
