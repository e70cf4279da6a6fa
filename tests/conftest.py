"""Test-wide settings: quiet TensorFlow, the TensorFlow backend for Keras."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def pytest_collection_modifyitems(config, items):
    """Drops tf.test.TestCase's inherited `test_session` helper, which is not a test."""
    items[:] = [item for item in items if item.name != "test_session"]
