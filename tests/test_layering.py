"""The core imports TensorFlow, Keras and NumPy alone; the driver needs no analysis extra.

Each import runs in a fresh interpreter in which the extras cannot be imported (a finder
refuses them, as in an environment where they are not installed; TensorFlow and Keras
import some of them optionally, and cope). The import-linter contracts of pyproject.toml
check the same statically in ``make test``.
"""
import subprocess
import sys

import tensorflow as tf

ANALYSIS = ("matplotlib", "pandas", "sklearn")
DATASETS = ("tensorflow_datasets", "PIL", "scipy")
DRIVER = ("tensorboard",)

BLOCKER = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed here (blocked by the test)")
sys.meta_path.insert(0, Refuse())
"""


def import_without(statement, blocked):
    """Runs ``statement`` in a new interpreter where ``blocked`` packages are missing."""
    code = BLOCKER.format(blocked=tuple(blocked)) + statement
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


class LayeringTest(tf.test.TestCase):

    def test_core_imports_no_extra(self):
        result = import_without(
            "import tftransfer, tftransfer.fisher, tftransfer.models, "
            "tftransfer.models.pretrained, tftransfer.weights.convert, "
            "tftransfer.models.feature_extraction, tftransfer.batching, tftransfer.variables",
            ANALYSIS + DATASETS + DRIVER)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

    def test_driver_imports_no_analysis_extra(self):
        result = import_without("import tftransfer.train", ANALYSIS)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

    def test_the_blocker_blocks(self):
        result = import_without("import tftransfer.analysis", ANALYSIS)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("blocked by the test", result.stderr)
