"""The README's quickstart runs as written: its code block is extracted from README.md (the
fenced ``python`` block after the marker comment) and executed unchanged."""
import contextlib
import io
import os
import re

import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
MARKER = "<!-- quickstart: tests/test_readme_quickstart.py executes the next code block"
FENCE = re.compile(r"```python\n(.*?)\n```", re.DOTALL)


def quickstart_code(text):
    """The code of the first fenced ``python`` block after :data:`MARKER` in ``text``.

    Raises:
      ValueError: no marker, or no ``python`` block after it.
    """
    start = text.find(MARKER)
    if start < 0:
        raise ValueError(f"README.md has no quickstart marker {MARKER!r}: put it on the line "
                         "before the quickstart's code block.")
    match = FENCE.search(text, start)
    if match is None:
        raise ValueError("README.md has no ```python block after the quickstart marker.")
    return match.group(1) + "\n"


def run_quickstart(text):
    """Executes the quickstart of ``text`` in a fresh namespace; returns the namespace and
    what it printed. Any error of the code propagates."""
    code = compile(quickstart_code(text), "README.md (quickstart)", "exec")
    namespace = {"__name__": "__main__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)  # noqa: S102 - the point of the test
    return namespace, printed.getvalue()


def readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


class ReadmeQuickstartTest(tf.test.TestCase):

    def test_quickstart_runs_as_written(self):
        namespace, printed = run_quickstart(readme())
        model, plan = namespace["model"], namespace["plan"]
        # What the example claims: L2-SP on the inherited kernels, L2 on the new head,
        # the penalty in model.losses, a fit and an evaluation.
        self.assertEqual(plan.scheme, "l2_sp")
        self.assertEqual(plan.new, ["predictions/kernel"])
        self.assertGreater(len(plan.inherited), 10)
        self.assertLen(model.losses, len(plan.inherited) + 1)
        self.assertBetween(namespace["accuracy"], 0.0, 1.0)
        self.assertGreater(namespace["loss"], 0.0)
        self.assertIn("test accuracy:", printed)
        self.assertIn("L2-SP on", printed)

    def test_the_example_imports_what_it_uses(self):
        """The issue's complaint: the old lines used ``keras`` and ``model`` undefined."""
        code = quickstart_code(readme())
        for line in ("import keras", "import numpy as np", "import tftransfer"):
            self.assertIn(line + "\n", code)
        self.assertIn("keras.applications.", code)
        self.assertIn(".fit(", code)
        self.assertIn(".evaluate(", code)

    def test_broken_code_fails(self):
        """The extraction and execution raise on a broken example (it can fail)."""
        text = readme()
        with self.assertRaises(ModuleNotFoundError):
            run_quickstart(text.replace("import keras\n", "import kears\n", 1))
        with self.assertRaises(SyntaxError):
            run_quickstart(text.replace("import numpy as np\n", "import numpy as\n", 1))
        with self.assertRaisesRegex(ValueError, "Unknown scheme 'l2sp'"):
            run_quickstart(text.replace('"l2_sp", alpha', '"l2sp", alpha', 1))

    def test_missing_marker_or_block_raises(self):
        with self.assertRaisesRegex(ValueError, "no quickstart marker"):
            quickstart_code(readme().replace(MARKER, "<!-- -->"))
        with self.assertRaisesRegex(ValueError, "no ```python block"):
            quickstart_code(MARKER + " -->\nno code here\n")


if __name__ == "__main__":
    tf.test.main()
