"""The API reference (tools/api_docs.py, ``make docs``) builds from the docstrings with no
warning, with a page per module of the package."""
import os
import tempfile
import warnings

import tensorflow as tf

from tools import api_docs

MAIN_PAGES = ("index.html", "tftransfer.html", "tftransfer/penalty.html",
              "tftransfer/regularizers.html", "tftransfer/fused_penalty.html",
              "tftransfer/fisher.html", "tftransfer/variables.html",
              "tftransfer/models/build.html", "tftransfer/models/small_resnet.html",
              "tftransfer/weights/torch_checkpoint.html", "tftransfer/methods/registry.html",
              "tftransfer/data/fashion_mnist.html", "tftransfer/training/run.html")


def _pdoc():
    try:
        import pdoc  # noqa: F401
    except ModuleNotFoundError:
        raise AssertionError(f"{api_docs.INSTALL_HINT} (`make test` installs it.)") from None


class ApiDocsTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        _pdoc()  # fails, not skips: the reference is part of the build
        cls.directory = tempfile.mkdtemp()
        cls.problems = api_docs.build(cls.directory)

    def test_builds_without_warnings(self):
        self.assertEqual(self.problems, [], "pdoc warnings:\n" + "\n".join(self.problems))

    def test_a_page_per_module(self):
        for page in MAIN_PAGES:
            self.assertTrue(os.path.isfile(os.path.join(self.directory, page)), page)
        pages = {os.path.relpath(os.path.join(d, f), self.directory)
                 for d, _, files in os.walk(self.directory) for f in files
                 if f.endswith(".html") and f != "index.html"}
        expected = {name.replace(".", "/") + ".html" for name in api_docs.module_names()}
        self.assertEqual(pages, expected)

    def test_docstrings_are_rendered(self):
        with open(os.path.join(self.directory, "tftransfer", "penalty.html"),
                  encoding="utf-8") as f:
            page = f.read()
        self.assertIn("penalize", page)
        self.assertIn("Attaches", page)  # penalize's docstring
        self.assertIn("<h6 id=\"arguments\">Arguments:</h6>", page)  # its Args: section

    def test_warnings_are_reported(self):
        """A module whose docstring pdoc warns about fails the build (the check can fail)."""
        module = os.path.join(self.get_temp_dir(), "api_docs_broken.py")
        with open(module, "w") as f:
            f.write('"""A module."""\n__all__ = ["missing"]\n')
        import sys
        sys.path.insert(0, self.get_temp_dir())
        try:
            with warnings.catch_warnings():
                problems = api_docs.build(self.get_temp_dir() + "/out", ["api_docs_broken"])
        finally:
            sys.path.remove(self.get_temp_dir())
        self.assertTrue(any("missing" in p for p in problems), problems)


if __name__ == "__main__":
    tf.test.main()
