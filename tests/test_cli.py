"""Command lines: every tool, benchmark and experiment script answers ``--help`` with its
options and exit status 0 without importing TensorFlow (one subprocess runs them all);
the driver's ``--help`` lists its own flags by section and exits 0 (also through the
``tftransfer_cli`` dispatcher), ``--helpfull`` adds absl's, invalid flags and a missing
--data_dir stop it with exit status 2 before any work (another subprocess runs all the
driver's command lines: one TensorFlow import); the help routine's sections; benchmarks leave BENCHMARKS.md untouched without
``--write`` (``report.publish``, the one route to the file, and a smallest run)."""
import contextlib
import glob
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from unittest import mock

import tensorflow as tf
from absl import flags

from benchmarks import report
from tftransfer.training import config as config_lib
from tftransfer.training import help as help_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Moved to their own package by another change (issue 21), which converts them itself.
NOT_HERE = {"tools.select_model", "tools.convert_torch_weights", "tools.compute_fisher",
            "tools.prepare_dataset"}
EXTRA = ["tftransfer_cli.sweep", "tftransfer_cli.tables"]
# The absl programs beside the driver, and one flag of each.
STUDIES = {"experiments.demo": "alpha_grid", "experiments.cpu_study": "workers",
           "experiments.scene_study": "source_root"}

# Runs ``python -m MODULE ARGS`` for each (module, args) of argv[1] (JSON) in this one
# process and prints, as JSON, each run's exit status, stdout, stderr and whether
# TensorFlow was imported by then (it cannot be unloaded: the first run that imports it is
# the culprit); a run's stderr holds its absl log lines too. The absl flags a run defined are deleted after it, so that programs
# defining the same names (--data_dir) run one after another.
RUNNER = r"""
import contextlib, io, json, runpy, sys
from absl import app, flags, logging
out = []
handler = logging.get_absl_handler().python_handler  # absl logs into the run's stderr too
for module, args in json.loads(sys.argv[1]):
    before = set(flags.FLAGS)
    sys.argv = [module, *args]
    text, errors, code = io.StringIO(), io.StringIO(), None
    stream, handler.stream = handler.stream, errors
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(errors):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) or stop.code is None else 1
        finally:
            handler.stream = stream
    out.append({"module": module, "args": args, "code": code, "stdout": text.getvalue(),
                "stderr": errors.getvalue(), "tensorflow": "tensorflow" in sys.modules})
    for name in set(flags.FLAGS) - before:
        if not flags.FLAGS.find_module_defining_flag(name, "").startswith(("tensorflow",
                                                                           "absl")):
            delattr(flags.FLAGS, name)
print("RESULTS" + json.dumps(out))
"""


def run_in_one_process(runs, timeout=300):
    """The RUNNER's records of ``runs`` ([(module, [args])]), run from the repository root."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="100")
    process = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(runs)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=timeout)
    marker = process.stdout.rfind("RESULTS")
    if process.returncode != 0 or marker < 0:
        raise AssertionError(f"runner failed ({process.returncode}):\n{process.stderr[-3000:]}")
    return json.loads(process.stdout[marker + len("RESULTS"):])


def command_modules():
    """Every ``tools/*.py`` and ``benchmarks/*.py`` with a ``__main__`` block (but
    NOT_HERE), and EXTRA."""
    modules = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tools", "*.py")) +
                       glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))):
        with open(path, encoding="utf-8") as f:
            if 'if __name__ == "__main__":' not in f.read():
                continue
        module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        if module not in NOT_HERE:
            modules.append(module)
    return modules + EXTRA


def declared_options(module):
    """The literal ``add_argument("--name"`` options of ``module``'s source."""
    with open(os.path.join(ROOT, *module.split(".")) + ".py", encoding="utf-8") as f:
        return re.findall(r'add_argument\(\s*"(--\w+)"', f.read())


# Usage errors of two tools (exit status 2 before any TensorFlow import).
USAGE_ERRORS = [("benchmarks.bench_methods", ["--methods", "nope"]), ("tools.weight_map", [])]


class ToolHelpTest(tf.test.TestCase):
    """Every tool's ``--help``, then :data:`USAGE_ERRORS`, in one process."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.modules = command_modules()
        records = run_in_one_process([(m, ["--help"]) for m in cls.modules] + USAGE_ERRORS)
        cls.help_records = records[:len(cls.modules)]
        cls.usage_records = records[len(cls.modules):]

    def test_every_tool_answers_help_without_tensorflow(self):
        modules = self.modules
        self.assertContainsSubset(["tools.layer_r2", "benchmarks.bench_penalty",
                                   "benchmarks.bench_methods", "benchmarks.device_check"],
                                  modules)
        self.assertNotIn("benchmarks.report", modules)
        records = self.help_records
        self.assertEqual([r["module"] for r in records], modules)
        for record in records:
            module, text = record["module"], record["stdout"]
            with self.subTest(module=module):
                self.assertEqual(record["code"], 0, text)
                self.assertFalse(record["tensorflow"],
                                 f"{module} --help imported TensorFlow (parse the arguments "
                                 "first, import TensorFlow/tftransfer after)")
                self.assertIn("usage:", text)
                self.assertIn("-h, --help", text)
                options = declared_options(module)
                self.assertNotEmpty(options)
                for option in options:
                    self.assertIn(option, text)
                if module.startswith("benchmarks."):
                    self.assertIn("--write", text)  # writing BENCHMARKS.md is opt-in

    def test_a_usage_error_exits_2_without_tensorflow(self):
        records = self.usage_records
        self.assertEqual([(r["module"], r["args"]) for r in records],
                         [(m, list(a)) for m, a in USAGE_ERRORS])
        for record in records:
            self.assertEqual(record["code"], 2, record)
            self.assertFalse(record["tensorflow"], record["module"])


# The driver's command lines that stop before any work (exit status 2), run by
# DriverHelpTest in its one process: invalid flags, and a --data_dir that does not exist.
INVALID = "Invalid flags, nothing was run"
BAD_FLAGS = ["--dataset=synthetic", "--scheme=l2_sp_fisher", "--alpha=-1", "--eval_crops=10",
             "--resize=224", "--learning_rate=nan", "--momentum=2"]


def fashion_flags():
    """Command-line flags of tests/test_train_input_problems.py's two-step Fashion-MNIST
    run (its ``FASHION``)."""
    from tests.test_train_input_problems import FASHION
    return [f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in FASHION.items() if not isinstance(v, bool)] + ["--noexport"]


class DriverHelpTest(tf.test.TestCase):
    """The driver's command line (``python -m tftransfer.train``, and through the
    dispatcher ``python -m tftransfer_cli train``): every run in one process (one TensorFlow
    import), ``--help`` and the usage error, the studies' ``--help``, and the command lines
    that stop before any work with exit status 2 (invalid flags; a missing --data_dir)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.never = {name: os.path.join(cls.tmp, f"never_{name}") for name in ("flags", "data")}
        cls.missing = os.path.join(cls.tmp, "absent")
        runs = {a: ("tftransfer.train", [a]) for a in ("--help", "-h", "--helpshort",
                                                        "--helpfull", "not_a_flag")}
        runs.update({m: (m, ["--help"]) for m in STUDIES})
        runs["dispatcher"] = ("tftransfer_cli", ["train", "--help"])
        runs["bad_flags"] = ("tftransfer.train",
                             BAD_FLAGS + [f"--output_dir={cls.never['flags']}"])
        runs["missing_data"] = ("tftransfer.train", fashion_flags() + [
            f"--data_dir={cls.missing}", f"--output_dir={cls.never['data']}"])
        records = run_in_one_process(list(runs.values()))
        by_name = dict(zip(runs, records))
        for name, record in by_name.items():
            assert (record["module"], record["args"]) == tuple(runs[name]), name
        cls.records = {a: by_name[a] for a in ("--help", "-h", "--helpshort", "--helpfull",
                                               "not_a_flag", "dispatcher", "bad_flags",
                                               "missing_data")}
        cls.studies = {m: by_name[m] for m in STUDIES}

    def test_help_lists_the_driver_flags_by_section_and_exits_0(self):
        text = self.records["--help"]["stdout"]
        self.assertEqual(self.records["--help"]["code"], 0)
        example = re.search(r"--flagfile=(flags/\S+\.cfg)", text)
        self.assertIsNotNone(example, text[:500])
        self.assertTrue(os.path.exists(os.path.join(ROOT, example.group(1))), example.group(1))
        headers = re.findall(r"^\[([\w.]+)\]$", text, re.M)
        self.assertContainsSubset(["model", "data", "data.synthetic", "penalty", "optim",
                                   "evaluation", "runtime", "task", "method"], headers)
        for name, leaf in config_lib.LEAVES.items():
            section = ".".join(leaf.path[:-1])
            block = text.split(f"\n[{section}]\n")[1].split("\n[")[0]
            self.assertRegex(block, rf"(^|\n)  --(\[no\])?{name}: ", name)
        penalty = text.split("\n[penalty]\n")[1].split("\n[")[0]
        entries = {e.split(":")[0]: " ".join(e.split())
                   for e in re.split(r"^  --(?:\[no\])?", penalty, flags=re.M) if e}
        self.assertIn("Regularisation scheme. (default: 'l2_sp')", entries["scheme"])
        self.assertIn("l2_sp|", entries["scheme"])
        self.assertIn("(default: '0.1') (a number)", entries["alpha"])
        listed = re.findall(r"^  --(?:\[no\])?(\w+):", text, re.M)
        self.assertCountEqual(listed, config_lib.LEAVES)  # the driver's flags, only them
        for internal in ("logtostderr", "verbosity", "helpfull", "flagfile",
                         "test_examples_per_class"):
            self.assertNotIn(internal, listed)

    def test_short_forms_print_the_same(self):
        for form in ("-h", "--helpshort"):
            self.assertEqual(self.records[form]["code"], 0)
            self.assertEqual(self.records[form]["stdout"], self.records["--help"]["stdout"])

    def test_usage_error_is_one_message_not_the_flag_listing(self):
        record = self.records["not_a_flag"]
        self.assertEqual(record["code"], 1)
        self.assertEqual(record["stdout"], "")
        self.assertEqual(record["stderr"], "Unexpected arguments ['not_a_flag']; every option "
                                           "is a --flag.\nPass --help to see the flags.\n")

    def test_demo_and_studies_list_their_own_flags(self):
        for module, flag in STUDIES.items():
            record = self.studies[module]
            with self.subTest(module=module):
                self.assertEqual(record["code"], 0)
                text = record["stdout"]
                self.assertIn(f"\n[{module}]\n", text)
                self.assertIn(f"Usage:\n    python -m {module}", text)
                self.assertRegex(text, rf"\n  --{flag}: ")
                self.assertNotIn("logtostderr", text)
                self.assertNotIn("--alpha:", text)  # a driver flag, not theirs

    def test_helpfull_adds_absl_flags_and_exits_0(self):
        record = self.records["--helpfull"]
        self.assertEqual(record["code"], 0)
        for name in ("logtostderr:", "--flagfile:", "--alpha:", "--scheme:"):
            self.assertIn(name, record["stdout"])
        self.assertIn("tftransfer.training.config.penalty:", record["stdout"])

    def test_train_help_through_the_dispatcher(self):
        """``python -m tftransfer_cli train --help`` (from tests/test_packaging.py)."""
        record = self.records["dispatcher"]
        self.assertEqual(record["code"], 0, record["stdout"][-1000:] + record["stderr"][-2000:])
        for flag in ("--output_dir", "--alpha", "--flagfile"):
            self.assertIn(flag, record["stdout"] + record["stderr"])

    def test_driver_stops_before_any_work(self):
        """Invalid flags: exit status 2, every problem listed, no output directory (from
        tests/test_train_flags.py)."""
        record = self.records["bad_flags"]
        self.assertEqual(record["code"], 2, record["stderr"][-2000:])
        self.assertIn(INVALID, record["stderr"])
        self.assertIn("--scheme=l2_sp_fisher needs --fisher_file", record["stderr"])
        self.assertIn("--alpha=-1.0 is negative", record["stderr"])
        self.assertIn("--eval_crops=10 needs images larger than the crop", record["stderr"])
        self.assertIn("--learning_rate=nan is not a finite number", record["stderr"])
        self.assertIn("--momentum=2.0 must be in [0, 1)", record["stderr"])
        self.assertFalse(os.path.exists(self.never["flags"]))

    def test_missing_data_dir_exit_status_and_nothing_written(self):
        """The command line stops with the invalid-flags status 2 on a --data_dir that does
        not exist (from tests/test_train_input_problems.py)."""
        record = self.records["missing_data"]
        self.assertEqual(record["code"], 2, record["stderr"][-3000:])
        self.assertIn(INVALID, record["stderr"])
        self.assertIn(f"--data_dir={self.missing} does not exist", record["stderr"])
        self.assertNotIn("Traceback", record["stderr"])
        self.assertFalse(os.path.exists(self.never["data"]))


def _main(argv):
    del argv


class HelpRoutineTest(tf.test.TestCase):
    """tftransfer.training.help on flags of its own (no program run)."""

    def values(self):
        values = flags.FlagValues()
        flags.DEFINE_integer("steps", 3, "Steps.", flag_values=values,
                             module_name="pkg.config.optim")
        flags.DEFINE_bool("fast", False, "Go fast.", flag_values=values,
                          module_name="pkg.config.runtime")
        flags.DEFINE_string("other", "x", "Not key.", flag_values=values,
                            module_name="elsewhere")
        flags.DEFINE_enum("scheme", "a", ["a", "b"], "Scheme.", flag_values=values,
                          module_name="pkg.config.optim")
        for name in ("steps", "fast", "scheme"):
            values.register_key_flag_for_module(help_lib.module_name(_main), values[name])
        return values

    def test_sections_are_the_defining_modules_without_their_shared_prefix(self):
        sections = help_lib.sections(help_lib.module_name(_main), self.values())
        self.assertEqual([(t, [f.name for f in g]) for t, g in sections],
                         [("optim", ["steps", "scheme"]), ("runtime", ["fast"])])

    def test_help_text(self):
        text = help_lib.help_text(_main, "Usage: prog [--flag=value]", self.values(), width=80)
        self.assertEqual(text.splitlines()[0], __doc__.splitlines()[0])
        self.assertIn("Usage: prog [--flag=value]\n", text)
        self.assertIn("[optim]\n  --steps: Steps.\n    (default: '3')\n    (an integer)\n"
                      "  --scheme: <a|b>: Scheme.\n    (default: 'a')\n", text)
        self.assertIn("[runtime]\n  --[no]fast: Go fast.\n    (default: 'false')\n", text)
        self.assertNotIn("--other", text)

    def test_default_usage_is_the_docstrings_commands(self):
        doc = "Title.\n\n    python -m prog --a\n    python -m prog --b   # why\n\nText.\n"
        self.assertEqual(help_lib.default_usage(doc),
                         "Usage:\n    python -m prog --a\n    python -m prog --b   # why")
        self.assertEqual(help_lib.default_usage("No command."), "")

    def test_parser_exits_0_on_help_and_parses_otherwise(self):
        values = self.values()
        parse = help_lib.parser(_main, "Usage: prog", values)
        for form in ("--help", "-h", "-?", "--helpshort"):
            out = io.StringIO()
            with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as stop:
                parse(["prog", "--steps=4", form])
            self.assertEqual(stop.exception.code, 0)
            self.assertIn("[optim]", out.getvalue())
        self.assertFalse(values["steps"].present)  # nothing was parsed
        with mock.patch.object(help_lib.app, "parse_flags_with_usage",
                               side_effect=lambda argv: ["parsed", *argv]) as absl_parse:
            self.assertEqual(parse(["prog", "--steps=4", "--", "-h"]),
                             ["parsed", "prog", "--steps=4", "--", "-h"])
        absl_parse.assert_called_once()


SECTIONS = ("# Benchmarks\n\nIntro.\n\n<!-- begin a -->\nold a\n<!-- end a -->\n\n"
            "<!-- begin b -->\nold b\n<!-- end b -->\n")


class BenchmarkWriteTest(tf.test.TestCase):
    """BENCHMARKS.md is written only with --write, and then only the tool's section."""

    def setUp(self):
        super().setUp()
        self.path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "BENCHMARKS.md")
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(SECTIONS)

    def read(self):
        with open(self.path, "rb") as f:
            return f.read()

    def test_publish_without_write_prints_and_leaves_the_file(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertIsNone(report.publish("a", "new a", False, self.path))
        self.assertEqual(out.getvalue(), "new a\n")
        self.assertEqual(self.read(), SECTIONS.encode())

    def test_publish_with_write_replaces_only_its_section(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(report.publish("a", "new a\n", True, self.path), self.path)
        self.assertEqual(self.read(), SECTIONS.replace("old a", "new a").encode())
        self.assertIn(f"written to {self.path}", out.getvalue())
        with contextlib.redirect_stdout(io.StringIO()):
            report.publish("c", "new c", True, self.path)
        self.assertEqual(self.read(), (SECTIONS.replace("old a", "new a") +
                                       "\n<!-- begin c -->\nnew c\n<!-- end c -->\n").encode())

    def test_every_benchmark_writes_only_through_publish_with_write(self):
        """The one route to BENCHMARKS.md is ``report.publish(name, text, args.write)``."""
        for module in command_modules():
            if not module.startswith("benchmarks."):
                continue
            with open(os.path.join(ROOT, *module.split(".")) + ".py", encoding="utf-8") as f:
                source = f.read()
            with self.subTest(module=module):
                self.assertFalse("update_section" in source or '"BENCHMARKS.md"' in source,
                                 "writes BENCHMARKS.md other than through report.publish")
                self.assertIn("report.publish(", source)
                self.assertIn(", args.write)", source)
                self.assertEqual(source.count("args.write"), source.count(", args.write)"),
                                 "args.write is used other than as publish's last argument")

    def test_smallest_benchmark_run_leaves_benchmarks_md_untouched(self):
        from benchmarks import bench_eval
        tracked = os.path.join(ROOT, "BENCHMARKS.md")
        with open(tracked, "rb") as f:
            before = f.read()
        out = io.StringIO()
        with mock.patch.object(report, "atomic_write_text") as write, \
                contextlib.redirect_stdout(out):
            bench_eval.main(["--arch", "small_resnet", "--resize", "20", "--crop", "16",
                             "--batch_size", "2", "--num_images", "2", "--num_classes", "3",
                             "--repetitions", "1"])
        write.assert_not_called()
        self.assertIn("## 10-crop evaluation cost", out.getvalue())  # the section, printed
        self.assertNotIn("written to", out.getvalue())
        with open(tracked, "rb") as f:
            self.assertEqual(f.read(), before)


if __name__ == "__main__":
    tf.test.main()
