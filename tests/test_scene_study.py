"""The segmentation study (experiments/scene_study): its source is the classification study's
run, its selection runs are evaluated on validation scenes and its finals on test scenes,
and the --quick study runs end to end through the driver on a tiny fake Fashion-MNIST,
writing a page whose numbers are those of its CSV files."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import tensorflow as tf

from tests.test_demo import write_tiny_fashion
from experiments.cpu_study import protocol as cpu_protocol
from experiments.scene_study import protocol, report, tables
from tftransfer.training import config as config_lib
from tftransfer.training import identity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


class QuickStudyTest(tf.test.TestCase):
    """``python -m experiments.scene_study --quick`` end to end on a tiny fake Fashion-MNIST
    (30 training and 8 test images per class), one worker; then the page redrawn from its
    files alone (``report.write_report``, what ``--report_only`` runs) is the same page."""

    def test_quick_study_writes_a_page_that_matches_its_csv(self):
        directory = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_dir, report_dir = (os.path.join(directory, "fashion"),
                                os.path.join(directory, "report"))
        write_tiny_fashion(data_dir, per_class_train=30, per_class_test=8)
        command = [sys.executable, "-m", "experiments.scene_study", "--quick", "--workers=1",
                   f"--data_dir={data_dir}", f"--output_dir={directory}",
                   f"--report_dir={report_dir}"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                timeout=600)
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-3000:])
        text = open(os.path.join(report_dir, tables.PAGE)).read()
        runs = pd.read_csv(os.path.join(report_dir, tables.csv_name("runs")))
        selection = pd.read_csv(os.path.join(report_dir, tables.csv_name("selection")))
        settings = protocol.Settings(**protocol.QUICK)
        self.assertLen(runs, 2 * len(protocol.METHODS) * settings.seeds)
        self.assertLen(selection, 2 * len(protocol.TUNED) * len(settings.alpha_grid))
        # Selection read validation scenes, the finals the test scenes.
        for path in _results(directory, "select"):
            self.assertEqual(json.load(open(path))["eval_split"], "validation")
        finals = _results(directory, "final")
        self.assertLen(finals, len(runs))
        for path in finals:
            self.assertEqual(json.load(open(path))["eval_split"], "test")
        self.assertEqual(set(runs["num_test"]), {settings.test_scenes})
        for (target, method), group in runs.groupby(["target", "method"]):
            v = 100 * group["test_miou"].to_numpy()
            cell = f"{v.mean():.2f} ± {np.std(v, ddof=1):.2f}"
            row = [l for l in text.split("## Results")[1].splitlines()
                   if l.startswith(f"| {report.label(method)} ")][0]
            self.assertIn(cell, row)
            if method != "none":
                scores = selection[(selection["target"] == target)
                                   & (selection["method"] == method)]
                best = scores.sort_values(["val_miou", "alpha"],
                                          ascending=[False, True]).iloc[0]
                self.assertEqual(set(group["alpha"]), {best["alpha"]})
        self.assertTrue(os.path.exists(os.path.join(report_dir, tables.FIGURE)))
        self.assertIn("--quick", text)
        # The page is drawn from the files alone: deleted and redrawn here (what
        # --report_only runs, report.write_report, in this process: a second interpreter
        # would import TensorFlow again for the same check), it is the same page.
        os.remove(os.path.join(report_dir, tables.PAGE))
        report.write_report(report_dir)
        self.assertEqual(open(os.path.join(report_dir, tables.PAGE)).read(), text)


def _results(root, phase):
    out = []
    for directory, _, files in os.walk(root):
        if "results.json" in files and f"{os.sep}{phase}{os.sep}" in directory + os.sep:
            out.append(os.path.join(directory, "results.json"))
    return out


if __name__ == "__main__":
    tf.test.main()
