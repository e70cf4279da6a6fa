"""The core imports TensorFlow, Keras and NumPy alone; the driver needs no analysis extra.

The imports run one after another in one fresh interpreter (one TensorFlow import) in which
the extras cannot be imported (a finder refuses them, as in an environment where they are
not installed; TensorFlow and Keras import some of them optionally, and cope): the core
with every extra refused, then the driver with the analysis extra still refused, then
``tftransfer.analysis``, which must fail. The import-linter contracts of pyproject.toml
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
BLOCKED = set()
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here (blocked by the test)")
sys.meta_path.insert(0, Refuse())
"""
# Each step: (name, statement, the packages refused while it runs). A step's failure ends
# the interpreter (the later steps do not run); the last is expected to fail and says so.
STEPS = (
    ("core", "import tftransfer, tftransfer.fisher, tftransfer.models, "
             "tftransfer.models.pretrained, tftransfer.weights.convert, "
             "tftransfer.models.feature_extraction, tftransfer.batching, tftransfer.variables",
     ANALYSIS + DATASETS + DRIVER),
    ("driver", "import tftransfer.train", ANALYSIS),
)
REFUSED = ("import tftransfer.analysis", ANALYSIS)


def import_steps(steps, refused):
    """Runs ``steps`` then the import ``refused`` (expected to fail) in a new interpreter;
    prints ``DONE <name>`` after each step and ``REFUSED <error>`` when the last fails."""
    code = BLOCKER
    for name, statement, blocked in steps:
        code += (f"BLOCKED.clear(); BLOCKED.update({tuple(blocked)!r})\n{statement}\n"
                 f"print('DONE {name}', flush=True)\n")
    statement, blocked = refused
    code += (f"BLOCKED.clear(); BLOCKED.update({tuple(blocked)!r})\n"
             f"try:\n    {statement}\nexcept ImportError as error:\n"
             f"    print('REFUSED', error, flush=True)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def import_without(statement, blocked):
    """Runs ``statement`` in a new interpreter where the ``blocked`` packages are missing
    (for other tests: tests/test_results_summary.py)."""
    code = BLOCKER + f"BLOCKED.update({tuple(blocked)!r})\n" + statement
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


class LayeringTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.result = import_steps(STEPS, REFUSED)
        cls.lines = cls.result.stdout.splitlines()

    def assertStepDone(self, name):
        self.assertIn(f"DONE {name}", self.lines, self.result.stderr[-3000:])

    def test_core_imports_no_extra(self):
        self.assertStepDone("core")

    def test_driver_imports_no_analysis_extra(self):
        self.assertStepDone("driver")

    def test_the_blocker_blocks(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
        refused = [l for l in self.lines if l.startswith("REFUSED")]
        self.assertLen(refused, 1, self.result.stdout[-3000:])
        self.assertIn("blocked by the test", refused[0])
