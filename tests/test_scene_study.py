"""The segmentation study (experiments/scene_study): its source is the classification study's
run, its selection runs are evaluated on validation scenes and its finals on test scenes;
:func:`check_quick_study` holds the checks of its --quick run end to end (run as the CPU
study's ``segmentation`` part by tests/test_cpu_study.py, on a tiny fake Fashion-MNIST):
a page whose numbers are those of its CSV files."""
import json
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from experiments.cpu_study import protocol as cpu_protocol
from experiments.scene_study import protocol, report, tables
from tftransfer.training import config as config_lib
from tftransfer.training import identity


class ProtocolTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.settings = protocol.Settings()
        self.weights = os.path.join(self.get_temp_dir(), "source.weights.h5")
        open(self.weights, "wb").close()  # validation checks that the file exists

    def run_of(self, method, select, seed=1, alpha=0.01, target="unseen"):
        return protocol.target_run(protocol.TARGETS[target], method, alpha, seed, "root",
                                   None, self.weights, self.settings, select)

    def test_source_is_the_classification_studys_run(self):
        """Same configuration, inputs and directory as the classification study's source
        of the far split: either study reuses the network the other trained."""
        mine = protocol.source_run("runs/cpu_study", self.settings, None, 30000)
        theirs = cpu_protocol.source_config(cpu_protocol.SPLITS["far"], "runs/cpu_study", 2,
                                            None, 30000)
        self.assertEqual(config_lib.to_dict(mine.config), config_lib.to_dict(theirs.config))
        self.assertEqual(identity.digest(mine.config, mine.inputs),
                         identity.digest(theirs.config, theirs.inputs))
        self.assertEqual(protocol.source_weights(mine),
                         os.path.join("runs/cpu_study", "sources", "far", "model.weights.h5"))

    def test_targets_are_and_are_not_the_source_classes(self):
        source = set(protocol.SOURCE_SPLIT.source_classes)
        self.assertEqual(set(protocol.TARGETS["seen"].classes), source)
        self.assertFalse(set(protocol.TARGETS["unseen"].classes) & source)

    def test_selection_holds_out_validation_scenes_and_finals_use_all(self):
        select, final = self.run_of("l2_sp", True), self.run_of("l2_sp", False)
        self.assertGreater(select.config.data.validation_fraction, 0)
        self.assertEqual(final.config.data.validation_fraction, 0.0)
        self.assertNotEqual(select.config.runtime.output_dir, final.config.runtime.output_dir)
        flags = config_lib.to_dict(final.config)
        self.assertEqual((flags["task"], flags["dataset"], flags["seg_head"]),
                         ("segmentation", "scenes", "fcn"))
        self.assertEqual(config_lib.integer_classes(flags["classes"]), [5, 6, 7, 8, 9])
        self.assertEqual((flags["source"], flags["weights"], flags["source_classes"]),
                         ("custom", self.weights, 5))
        self.assertEqual(flags["scenes_size"], 64)
        config_lib.validate(final.config)
        config_lib.validate(select.config)

    def test_scenes_are_the_same_for_every_method_and_seed(self):
        """Only the method's options and the seed differ between runs of a target."""
        runs = [self.run_of(m, False, seed=s) for m in protocol.METHODS for s in (1, 2)]
        flags = [config_lib.to_dict(r.config) for r in runs]
        scene_flags = [k for k in flags[0] if k.startswith("scenes_")] + ["split_seed",
                                                                           "classes"]
        for f in flags[1:]:
            self.assertEqual({k: f[k] for k in scene_flags},
                             {k: flags[0][k] for k in scene_flags})
        self.assertLen({r.config.runtime.output_dir for r in runs}, len(runs))

    def test_method_fields(self):
        none = config_lib.to_dict(self.run_of("none", False, alpha=0.0).config)
        self.assertEqual((none["scheme"], none["alpha"], none["beta"]), ("none", 0.0, 0.0))
        l2 = config_lib.to_dict(self.run_of("l2", False, alpha=0.1).config)
        self.assertEqual((l2["scheme"], l2["alpha"], l2["beta"]), ("l2", 0.1, protocol.BETA))
        with self.assertRaisesRegex(ValueError, "unknown method"):
            protocol.method_fields("l1_sp", 0.1)


def check_quick_study(test, runs_dir, report_dir, methods=protocol.METHODS):
    """The checks of a ``--quick`` scene study whose runs are under ``runs_dir`` and whose
    tables and page are in ``report_dir`` (run by the CPU study's quick test, whose
    ``segmentation`` part is this study: tests/test_cpu_study.py QuickStudyTest): the
    selection read validation scenes and the finals the test scenes, the page's cells are
    the CSV's mean ± sample std, the chosen alpha is the best validation mIoU, and the page
    redrawn from its files alone (what ``--report_only`` runs) is the same page.
    ``methods``: the methods the run kept (the CPU study's --methods filters them)."""
    text = open(os.path.join(report_dir, tables.PAGE)).read()
    runs = pd.read_csv(os.path.join(report_dir, tables.csv_name("runs")))
    selection = pd.read_csv(os.path.join(report_dir, tables.csv_name("selection")))
    settings = protocol.Settings(**protocol.QUICK)
    tuned = [m for m in protocol.TUNED if m in methods]
    test.assertEqual(set(runs["method"]), set(methods))
    test.assertLen(runs, 2 * len(methods) * settings.seeds)
    test.assertLen(selection, 2 * len(tuned) * len(settings.alpha_grid))
    for path in _results(runs_dir, "select"):
        test.assertEqual(json.load(open(path))["eval_split"], "validation")
    finals = _results(runs_dir, "final")
    test.assertLen(finals, len(runs))
    for path in finals:
        test.assertEqual(json.load(open(path))["eval_split"], "test")
    test.assertEqual(set(runs["num_test"]), {settings.test_scenes})
    for (target, method), group in runs.groupby(["target", "method"]):
        v = 100 * group["test_miou"].to_numpy()
        cell = f"{v.mean():.2f} ± {np.std(v, ddof=1):.2f}"
        row = [l for l in text.split("## Results")[1].splitlines()
               if l.startswith(f"| {report.label(method)} ")][0]
        test.assertIn(cell, row)
        if method != "none":
            scores = selection[(selection["target"] == target)
                               & (selection["method"] == method)]
            best = scores.sort_values(["val_miou", "alpha"],
                                      ascending=[False, True]).iloc[0]
            test.assertEqual(set(group["alpha"]), {best["alpha"]})
    test.assertTrue(os.path.exists(os.path.join(report_dir, tables.FIGURE)))
    test.assertIn("--quick", text)
    os.remove(os.path.join(report_dir, tables.PAGE))
    report.write_report(report_dir)
    test.assertEqual(open(os.path.join(report_dir, tables.PAGE)).read(), text)


def _results(root, phase):
    out = []
    for directory, _, files in os.walk(root):
        if "results.json" in files and f"{os.sep}{phase}{os.sep}" in directory + os.sep:
            out.append(os.path.join(directory, "results.json"))
    return out


if __name__ == "__main__":
    tf.test.main()
