"""The install: the `tftransfer` dispatcher and its commands, the extras' install hints, and
the wheel (built offline, no warning, with the commands, the data files, the license and the
console script).

Two subprocesses import nothing heavy; `tftransfer train --help` (TensorFlow) runs in
tests/test_cli.py's one process of the driver's command lines.
"""
import contextlib
import importlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from unittest import mock

import tensorflow as tf

from tftransfer import extras
from tftransfer_cli import main as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ("select", "convert", "fisher", "prepare")  # commands whose module is tftransfer_cli's


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # setuptools says "byte-compiling is disabled"
    return env


def _run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=_env(),
                          timeout=600, **kwargs)


def _dispatch(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(argv)
    return status, out.getvalue(), err.getvalue()


class DispatcherTest(tf.test.TestCase):

    def test_help_lists_every_command_one_line_each(self):
        status, out, _ = _dispatch(["--help"])
        self.assertEqual(status, 0)
        for name, (_, text) in cli.COMMANDS.items():
            self.assertRegex(out, rf"(?m)^  {name} +{re.escape(text)}$")
        self.assertEqual(set(cli.COMMANDS),
                         {"train", "select", "convert", "fisher", "prepare", "tables", "sweep"})

    def test_no_command_and_an_unknown_one_exit_2_with_the_list(self):
        for argv, says in (([], "a command is needed"), (["trian"], "unknown command 'trian'")):
            status, out, err = _dispatch(argv)
            self.assertEqual((status, out), (2, ""))
            self.assertIn(says, err)
            self.assertIn("  select ", err)

    def test_a_missing_module_is_reported_not_raised(self):
        commands = dict(cli.COMMANDS, gone=("no_such_package.tool", "missing"))
        with mock.patch.object(cli, "COMMANDS", commands):
            status, _, err = _dispatch(["gone"])
        self.assertEqual(status, 2)
        self.assertIn("no_such_package.tool is not installed here", err)

    def test_every_command_is_a_module_with_main(self):
        for name, (module, _) in cli.COMMANDS.items():
            with self.subTest(command=name):
                self.assertTrue(callable(importlib.import_module(module).main))
        for name in SHIPPED:
            self.assertTrue(cli.COMMANDS[name][0].startswith("tftransfer_cli."), name)

    def test_help_imports_no_tensorflow(self):
        """The dispatcher and the shipped commands parse before importing the library."""
        code = ("import contextlib, io, sys\n"
                "from tftransfer_cli import main\n"
                "for argv in (['--help'], *[[c, '--help'] for c in %r]):\n"
                "    try:\n"
                "        with contextlib.redirect_stdout(io.StringIO()):\n"
                "            main.main(argv)\n"
                "    except SystemExit as e:\n"
                "        assert e.code == 0, (argv, e.code)\n"
                "heavy = [m for m in ('tensorflow', 'keras', 'tftransfer') if m in sys.modules]\n"
                "print('heavy:', heavy)\n" % (SHIPPED,))
        result = _run([sys.executable, "-c", code])
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("heavy: []", result.stdout)

    def test_moved_tools_keep_their_old_import(self):
        for old, new in (("select_model", "select_model"), ("convert_torch_weights", "convert"),
                         ("compute_fisher", "fisher"), ("prepare_dataset", "prepare")):
            self.assertIs(importlib.import_module(f"tools.{old}").main,
                          importlib.import_module(f"tftransfer_cli.{new}").main)


class ExtrasTest(tf.test.TestCase):

    def test_the_hint_works_from_an_index_and_from_a_checkout(self):
        self.assertEqual(extras.install_hint("sklearn"),
                         'pip install "tftransfer[sklearn]" (in a checkout: pip install -e '
                         '".[sklearn]"; the package alone: pip install scikit-learn)')
        self.assertNotIn("the package", extras.install_hint("all"))
        with self.assertRaisesRegex(ValueError, "'svm' is not an extra.*sklearn"):
            extras.install_hint("svm")

    def test_the_makefile_installs_the_torch_of_the_test_extra(self):
        with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
            pin = re.search(r"(?m)^TORCH_PIN := (\S+)$", f.read()).group(1)
        self.assertEqual([r for r in extras.EXTRAS["test"] if r.startswith("torch")], [pin])


class WheelTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        """Builds the wheel of a copy of the checkout's files (a stale build/ would add files),
        offline, with the setuptools installed here."""
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        source = os.path.join(cls.tmp, "src")
        files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        for path in filter(None, files.stdout.split("\0")):
            if os.path.isfile(os.path.join(ROOT, path)):
                os.makedirs(os.path.join(source, os.path.dirname(path)), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, path), os.path.join(source, path))
        cls.build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                          "--no-build-isolation", "-w", os.path.join(cls.tmp, "dist"), source])
        wheels = os.listdir(os.path.join(cls.tmp, "dist")) if cls.build.returncode == 0 else []
        cls.wheel = os.path.join(cls.tmp, "dist", wheels[0]) if wheels else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def test_the_build_prints_no_warning(self):
        self.assertEqual(self.build.returncode, 0, self.build.stderr[-3000:])
        output = self.build.stdout + self.build.stderr
        self.assertIn("Successfully built tftransfer", output)
        self.assertEqual([line for line in output.splitlines()
                          if re.search(r"warn|absent", line, re.IGNORECASE)], [])

    def test_the_wheel_has_the_commands_data_license_and_console_script(self):
        self.assertIsNotNone(self.wheel, self.build.stderr[-3000:])
        with zipfile.ZipFile(self.wheel) as wheel:
            names = set(wheel.namelist())
            info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
            entry_points = wheel.read(f"{info}/entry_points.txt").decode()
            metadata = wheel.read(f"{info}/METADATA").decode()
        resources = os.listdir(os.path.join(ROOT, "tftransfer", "data", "resources"))
        self.assertNotEmpty(resources)
        expected = {"tftransfer_cli/main.py", "tftransfer_cli/select_model.py",
                    "tftransfer/extras.py", f"{info}/licenses/LICENSE",
                    *(f"tftransfer/data/resources/{r}" for r in resources)}
        self.assertEmpty(expected - names)
        self.assertEqual({n.split("/")[0] for n in names},
                         {"tftransfer", "tftransfer_cli", info})  # no tools/, experiments/
        self.assertEqual(re.findall(r"(?m)^Provides-Extra: (\S+)$", metadata),
                         list(extras.EXTRAS))  # setup.py declares tftransfer/extras.py's
        self.assertRegex(entry_points,
                         r"\[console_scripts\]\s+tftransfer = tftransfer_cli\.main:main")


if __name__ == "__main__":
    tf.test.main()
