"""Results of issue 21: the runs folder's summary.csv (one row per run, appended safely by
concurrent processes, the header grown by a rewrite), tftransfer_cli/tables.py on a
demo-shaped runs folder (one row per configuration, validation and test runs never pooled,
the demo's own record skipped) and a tiny driver run that writes summary.csv,
train_log.csv and TensorBoard events with --log_every=0."""
import contextlib
import csv
import glob
import io
import json
import multiprocessing
import os
import tempfile
from unittest import mock

import numpy as np
import pandas as pd
import tensorflow as tf

from experiments import demo
from tftransfer_cli import tables as make_tables
from tests.train_testutil import tiny_config
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib
from tftransfer.training import identity as identity_lib
from tftransfer.training import results as results_lib
from tftransfer.training import summary


def read_table(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fake_record(accuracy, split="test", **extra):
    return {"finished_at": "2026-12-03T12:00:00Z", "accuracy": accuracy,
            "cross_entropy": 0.5, "eval_crops": 1, "eval_split": split, "num_eval": 20,
            "steps": 30, "train_time_s": 1.25, "images_per_s": 192.0,
            "timings": {"train_s": 1.25, "eval_s": 0.5, "process_s": 9.0},
            "versions": {"tensorflow": "x", "keras": "y", "tftransfer": "z"}, **extra}


def _append_many(where, writer, count, grow_at):
    """One process of the concurrency test: ``count`` rows; from row ``grow_at`` on, each
    with a column the table lacks (so the table is rewritten under the others' appends)."""
    for i in range(count):
        columns = ["writer", "i", "payload"] + ([f"late{i}"] if i >= grow_at else [])
        values = {"writer": str(writer), "i": str(i), "payload": f"{writer}-{i}-" + "x" * 300,
                  f"late{i}": f"late{writer}-{i}"}
        summary.append(where, columns, {c: values[c] for c in columns})


class SummaryTableTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix="tftransfer-summary-")

    def test_path_auto_explicit_and_none(self):
        config = tiny_config(os.path.join(self.root, "runs", "a"), summary_csv="auto")
        self.assertEqual(summary.path(config), os.path.join(self.root, "runs", "summary.csv"))
        mine = os.path.join(self.root, "t.csv")
        self.assertEqual(summary.path(config_lib.replace(config, summary_csv=mine)), mine)
        self.assertIsNone(summary.path(config_lib.replace(config, summary_csv="")))
        with self.assertRaisesRegex(summary.SummaryError, "is a directory"):
            summary.check(config_lib.replace(config, summary_csv=self.root))

    def test_row_has_the_identity_flags_the_split_metrics_and_timings(self):
        config = tiny_config(os.path.join(self.root, "runs", "a"), seed=3, alpha=0.5)
        columns, row = summary.row(config, None, fake_record(0.75, "validation"))
        identity = identity_lib.of(config)
        self.assertEqual(columns[-len(identity):], list(identity))
        for name in config_lib.names_with(config_lib.OUTPUT):
            self.assertNotIn(name, columns[len(summary.LEADING) + 1:])  # output_dir leads
        self.assertEqual(row["output_dir"], config.runtime.output_dir)
        self.assertEqual((row["accuracy"], row["validation_accuracy"], row["test_accuracy"]),
                         ("0.75", "0.75", ""))
        self.assertEqual((row["train_s"], row["eval_s"], row["images_per_s"]),
                         ("1.25", "0.5", "192.0"))
        self.assertEqual((row["seed"], row["alpha"], row["model_widths"]), ("3", "0.5", "[4, 8]"))
        self.assertEqual(row["run_digest"], identity_lib.digest(config))
        other_seed = summary.row(config_lib.replace(config, seed=4), None, fake_record(0.7))[1]
        other_alpha = summary.row(config_lib.replace(config, alpha=0.1), None,
                                  fake_record(0.7))[1]
        self.assertEqual(other_seed["config_digest"], row["config_digest"])
        self.assertNotEqual(other_seed["run_digest"], row["run_digest"])
        self.assertNotEqual(other_alpha["config_digest"], row["config_digest"])

    def test_header_once_then_rows_and_a_grown_header_rewrites(self):
        where = os.path.join(self.root, "summary.csv")
        summary.append(where, ["a", "b"], {"a": "1", "b": "x,y"})
        summary.append(where, ["a", "b"], {"a": "2", "b": ""})
        summary.append(where, ["b"], {"b": "only b"})  # fewer columns: appended
        with open(where) as f:
            self.assertEqual(f.read().count("a,b\n"), 1)
        inode = os.stat(where).st_ino
        self.assertEqual(summary.append(where, ["a", "c", "b"], {"a": "4", "b": "", "c": "new"}),
                         ["a", "b", "c"])
        self.assertNotEqual(os.stat(where).st_ino, inode)  # replaced, not edited in place
        self.assertEqual(read_table(where), [
            {"a": "1", "b": "x,y", "c": ""}, {"a": "2", "b": "", "c": ""},
            {"a": "", "b": "only b", "c": ""}, {"a": "4", "b": "", "c": "new"}])

    def test_half_written_last_line_is_dropped(self):
        where = os.path.join(self.root, "summary.csv")
        summary.append(where, ["a"], {"a": "1"})
        with open(where, "a") as f:
            f.write("2-half-writ")
        with self.assertLogs(level="WARNING"):
            summary.append(where, ["a"], {"a": "3"})
        self.assertEqual(read_table(where), [{"a": "1"}, {"a": "3"}])

    def test_concurrent_appends_lose_and_garble_nothing(self):
        where = os.path.join(self.root, "runs", "summary.csv")
        writers, count = 4, 60
        context = multiprocessing.get_context("fork")  # the children run the stdlib only
        processes = [context.Process(target=_append_many,
                                     args=(where, w, count, 30 if w == 0 else count))
                     for w in range(writers)]
        for p in processes:
            p.start()
        for p in processes:
            p.join(120)
            self.assertEqual(p.exitcode, 0)
        rows = read_table(where)
        self.assertEqual(len(rows), writers * count)  # none lost
        self.assertEqual(sorted((int(r["writer"]), int(r["i"])) for r in rows),
                         [(w, i) for w in range(writers) for i in range(count)])
        self.assertLen(rows[0], 3 + count - 30)  # 30 rewrites, each adding a column
        for r in rows:
            self.assertEqual(r["payload"], f"{r['writer']}-{r['i']}-" + "x" * 300)
            for i in range(30, count):
                grown = r["writer"] == "0" and int(r["i"]) == i
                self.assertEqual(r[f"late{i}"], f"late0-{i}" if grown else "")

    def test_make_tables_lists_agree_with_the_driver(self):
        self.assertCountEqual(make_tables.OUTPUT_FLAGS, config_lib.names_with(config_lib.OUTPUT))
        self.assertEqual(list(make_tables.SUMMARY_FIELDS),
                         summary.LEADING + summary.METRICS + summary.TIMINGS
                         + summary.PROVENANCE)


# The demo's layout (experiments/demo.py): source-e3, select/<method>_alpha<a>/seed0 on
# the validation split, final/<method>_alpha<chosen>/seed1..3 on the test split, and the
# demo's own results.json. Validation accuracies are far from the test ones, so a pooled
# cell shows.
GRID = (1e-4, 0.1)
CHOSEN = {"l2": 0.1, "l2_sp": 1e-4, "none": 0.0, "scratch": 0.0}
SELECTION = {("l2", 1e-4): 0.84, ("l2", 0.1): 0.92, ("l2_sp", 1e-4): 0.84,
             ("l2_sp", 0.1): 0.84}
FINAL = {"scratch": [0.81, 0.83, 0.84], "none": [0.86, 0.858, 0.862],
         "l2": [0.88, 0.89, 0.875], "l2_sp": [0.86, 0.863, 0.858]}


def _demo_record(output_root, names, accuracy, split, **overrides):
    """Writes one run's results.json with the driver's writer and flags, and its
    summary.csv row (the demo's table); returns the output directory."""
    config = demo.driver_config(*names, summary_csv=os.path.join(output_root, "summary.csv"),
                                **overrides)
    config = config_lib.dataset_defaults(config,
                                         data_lib.DRIVER_INPUTS.input_shape(config)[-1])
    output = config.runtime.output_dir
    fields = dict(accuracy=accuracy, cross_entropy=1 - accuracy, eval_crops=1,
                  eval_split=split, num_eval=25 if split == "validation" else 5000,
                  num_train=75 if split == "validation" else 100, num_classes=5,
                  steps=300, train_time_s=2.0, images_per_s=4800.0,
                  timings={"train_s": 2.0, "eval_s": 0.3},
                  without_effect=sorted(config_lib.without_effect(config)))
    record = results_lib.write(output, identity_lib.record_flags(config), **fields)
    summary.append_run(config, None, record)
    return output


def write_demo_runs(root):
    weights = os.path.join(root, "source-e3", "model.weights.h5")
    with mock.patch.object(results_lib, "git_state", return_value=("0" * 40, False)):
        _demo_record(root, ["demo_source"], 0.95, "test",
                     output_dir=os.path.join(root, "source-e3"))
        common = dict(data_dir=None, examples_per_class=20, train_steps=300,
                      lr_boundaries=[200], batch_size=32, learning_rate=0.01, beta=0.01)
        for (method, alpha), accuracy in SELECTION.items():
            _demo_record(root, ["demo_target", f"demo_{method}", "demo_select"], accuracy,
                         "validation", alpha=alpha, seed=0, weights=weights,
                         validation_fraction=0.25, output_dir=os.path.join(
                             root, "select", f"{method}_alpha{alpha:g}", "seed0"), **common)
        for method, accuracies in FINAL.items():
            alpha = CHOSEN[method]
            for seed, accuracy in enumerate(accuracies, start=1):
                extra = {} if method == "scratch" else {"weights": weights}
                if method in ("l2", "l2_sp"):
                    extra["alpha"] = alpha
                _demo_record(root, ["demo_target", f"demo_{method}"], accuracy, "test",
                             seed=seed, output_dir=os.path.join(
                                 root, "final", f"{method}_alpha{alpha:g}", f"seed{seed}"),
                             **common, **extra)
    results_lib.atomic_write_json(os.path.join(root, "results.json"), {
        "flags": {"output_dir": root, "seeds": 3}, "selection": [], "runs": [],
        "chosen_alpha": {"l2": 0.1, "l2_sp": 1e-4}})


class MakeTablesOnDemoRunsTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="tftransfer-demo-runs-")
        write_demo_runs(cls.root)

    def tables(self, *sources):
        out_dir = tempfile.mkdtemp(prefix="tftransfer-tables-")
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            make_tables.main([*sources, f"--out_dir={out_dir}", "--format=csv"])
        return (pd.read_csv(os.path.join(out_dir, "runs.csv")),
                pd.read_csv(os.path.join(out_dir, "table2.csv")), err.getvalue())

    def check_runs_table(self, runs):
        # 1 source + 4 selection + 4 final configurations, one row each.
        self.assertLen(runs, 9)
        self.assertEqual(sorted(runs["runs"]), [1] * 5 + [3] * 4)
        for method, accuracies in FINAL.items():
            scheme = "none" if method == "scratch" else method
            rows = runs[(runs.split == "test") & (runs.scheme == scheme) & (runs.runs == 3)]
            if method in ("scratch", "none"):
                rows = rows[rows.source == ("none" if method == "scratch" else "custom")]
            self.assertLen(rows, 1, method)
            expected = 100 * np.array(accuracies)
            self.assertAllClose(rows["mean"].iloc[0], expected.mean())
            self.assertAllClose(rows["std"].iloc[0], expected.std(ddof=1))
            self.assertEqual(json.loads(rows["seeds"].iloc[0]), [1, 2, 3])
        selection = runs[runs.split == "validation"]
        self.assertLen(selection, 4)
        for _, row in selection.iterrows():  # each the one seed-0 run of its grid point
            self.assertAllClose(row["mean"], 100 * SELECTION[row["scheme"], row["alpha"]])
            self.assertEqual(row["validation_fraction"], 0.25)

    def test_one_row_per_configuration_never_pooling_splits(self):
        runs, table2, err = self.tables(self.root)
        self.assertIn("1 record(s) that are not driver runs skipped", err)  # demo's own
        self.check_runs_table(runs)
        # Table 2's L2 cell on fashion_mnist: the 3 final test runs, not the selection runs
        # (the "L2 91.0+-2.9" pooled both).
        cell = table2[(table2.method == "L2") & (table2.dataset == "fashion_mnist")].iloc[0]
        final = 100 * np.array(FINAL["l2"])
        self.assertEqual(cell["runs"], 3)
        self.assertAllClose(cell["mean"], final.mean())
        self.assertAllClose(cell["std"], final.std(ddof=1))

    def test_summary_csv_gives_the_same_table(self):
        table = os.path.join(self.root, "summary.csv")
        self.assertLen(read_table(table), 1 + 4 + 12)
        runs, _, _ = self.tables(table)
        self.check_runs_table(runs)
        from_records, _, _ = self.tables(self.root)
        self.assertEqual(sorted(runs["mean"]), sorted(from_records["mean"]))

    def test_runs_without_tensorflow(self):
        from tests.test_layering import import_without

        result = import_without(
            "import sys; sys.path.insert(0, %r)\n"
            "from tftransfer_cli import tables as make_tables\n"
            "make_tables.main([%r, '--tables=runs', '--format=csv'])\n" % (
                os.path.dirname(os.path.dirname(os.path.abspath(__file__))), self.root),
            ("tensorflow", "keras", "tftransfer"))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("validation", result.stdout)

    def test_records_without_a_split_are_never_pooled(self):
        old = tempfile.mkdtemp(prefix="tftransfer-old-")
        for i, (split, accuracy) in enumerate((("validation", 0.99), ("test", 0.5),
                                               ("test", 0.6))):
            directory = os.path.join(old, f"run{i}")
            os.makedirs(directory)
            with open(os.path.join(directory, "results.json"), "w") as f:
                json.dump({"flags": {"dataset": "fashion_mnist", "scheme": "l2", "seed": i},
                           "accuracy": accuracy}, f)  # an older record: no eval_split
        runs, table2, err = self.tables(old)
        self.assertIn("3 run(s) record no eval_split", err)
        self.assertEqual((len(runs), set(runs["runs"])), (3, {1}))
        self.assertEqual(set(runs["split"]), {"unknown"})
        self.assertEqual(table2[table2.dataset == "fashion_mnist"]["runs"].sum(), 0)

    def test_a_paper_cell_of_two_configurations_is_not_averaged(self):
        runs_dir = tempfile.mkdtemp(prefix="tftransfer-mixed-")
        for alpha in (0.01, 0.1):
            for seed in (0, 1):
                directory = os.path.join(runs_dir, f"a{alpha}", f"s{seed}")
                os.makedirs(directory)
                with open(os.path.join(directory, "results.json"), "w") as f:
                    json.dump({"flags": {"dataset": "stanford_dogs120", "scheme": "l2_sp",
                                         "alpha": alpha, "seed": seed, "eval_crops": 1},
                               "eval_split": "test", "accuracy": 0.7 + alpha}, f)
        runs, table2, err = self.tables(runs_dir)
        self.assertLen(runs, 2)
        cell = table2[(table2.method == "L2-SP") & (table2.dataset == "stanford_dogs120")]
        self.assertEqual((cell["runs"].iloc[0], cell["configurations"].iloc[0]), (0, 2))
        self.assertTrue(np.isnan(cell["mean"].iloc[0]))
        self.assertIn("differ in --alpha", err)


class DriverRunWritesItsResultsTest(tf.test.TestCase):
    """One tiny driver run with --log_every=0 (as the demo's): summary.csv, train_log.csv
    (one row at the end) and TensorBoard events."""

    def test_tiny_run(self):
        from tftransfer.training.run import run

        root = tempfile.mkdtemp(prefix="tftransfer-results-e2e-")
        output = os.path.join(root, "runs", "l2")
        record = run(tiny_config(output, source="none", scheme="l2", beta=1e-3, export=False,
                                 log_every=0, checkpoint_every=0, train_steps=6,
                                 lr_boundaries=[4], summary_csv="auto"))
        rows = read_table(os.path.join(root, "runs", "summary.csv"))
        self.assertLen(rows, 1)
        self.assertEqual((rows[0]["output_dir"], float(rows[0]["accuracy"]),
                          float(rows[0]["test_accuracy"]), rows[0]["train_steps"]),
                         (output, record["accuracy"], record["accuracy"], "6"))
        self.assertAllClose(float(rows[0]["train_s"]), record["timings"]["train_s"])
        log = read_table(os.path.join(output, "train_log.csv"))
        self.assertLen(log, 1)
        self.assertEqual(log[0]["step"], "6")
        self.assertAllClose(float(log[0]["learning_rate"]), 0.05 * 0.1)  # update 6 > 4
        self.assertTrue(np.isfinite(float(log[0]["loss"])))
        self.assertGreater(float(log[0]["penalty"]), 0.0)
        events = glob.glob(os.path.join(output, "tensorboard", "events.out.tfevents.*"))
        self.assertLen(events, 1)
        tags = {(v.tag, e.step) for e in tf.compat.v1.train.summary_iterator(events[0])
                for v in e.summary.value}
        self.assertContainsSubset({("loss", 6), ("penalty", 6), ("learning_rate", 6)}, tags)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            make_tables.main([os.path.join(root, "runs"), "--tables=runs",
                              "--format=markdown"])
        self.assertIn(f"{100 * record['accuracy']:.2f}", out.getvalue())


if __name__ == "__main__":
    tf.test.main()
