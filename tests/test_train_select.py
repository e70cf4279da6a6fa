"""Model selection (Li et al. 2018, Section 4.1: alpha chosen by cross-validation): the
pooling and choice rule of tftransfer.training.selection against hand-computed cases, and
`tftransfer select` (tftransfer_cli/select_model.py) end to end on a tiny class-per-folder
tree: k-fold runs that never open the test split, the choice recomputed from the fold
records, final runs on every labelled image."""
import json
import os
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from tests.test_train_options import CLASSES, write_class_folders
from tests.train_testutil import tiny_config
from tftransfer.data.builders import base
from tftransfer.training import selection
from tftransfer.training.run import run as driver_run
from tftransfer_cli import select_model


def _record(alpha, accuracy, cross_entropy, num_eval=10, split="validation", beta=0.01):
    return {"accuracy": accuracy, "cross_entropy": cross_entropy, "num_eval": num_eval,
            "eval_split": split, "flags": {"alpha": alpha, "beta": beta,
                                           "output_dir": f"run_{alpha}"}}


class RuleTest(tf.test.TestCase):

    def test_folds_pool_by_images(self):
        records = [_record(0.1, 0.5, 1.0, 10), _record(0.1, 1.0, 0.2, 30)]
        (candidate,) = selection.pool(records)
        self.assertEqual((candidate.folds, candidate.num_eval), (2, 40))
        self.assertAllClose(candidate.accuracy, (5 + 30) / 40)
        self.assertAllClose(candidate.cross_entropy, (10 * 1.0 + 30 * 0.2) / 40)

    def test_accuracy_ties_go_to_the_lower_cross_entropy_then_the_smaller_value(self):
        records = [_record(0.001, 0.8, 0.5), _record(0.01, 0.8, 0.4), _record(0.1, 0.7, 0.1)]
        candidates = selection.pool(records)
        self.assertEqual(selection.best(candidates).value["alpha"], 0.01)
        self.assertEqual(selection.best(candidates, "cross_entropy").value["alpha"], 0.1)
        self.assertEqual(selection.choose(records), 0.001)  # the demo's rule
        tied = selection.pool([_record(0.01, 0.8, 0.4), _record(0.001, 0.8, 0.4)])
        self.assertEqual(selection.best(tied).value["alpha"], 0.001)

    def test_only_validation_records_choose(self):
        with self.assertRaisesRegex(ValueError, "only validation accuracies"):
            selection.pool([_record(0.1, 0.9, 0.1, split="test")])

    def test_table_shows_both_measures_and_the_choice(self):
        candidates = selection.pool([_record(0.001, 0.8, 0.5), _record(0.01, 0.9, 0.4)])
        lines = selection.table(candidates, candidates[1])
        self.assertIn("val cross-entropy", lines[0])
        self.assertRegex(lines[3], r"0\.01 .*0\.9000 .*0\.4000 +\*$")


class SelectToolTest(tf.test.TestCase):

    def test_kfold_selection_end_to_end(self):
        tmp = tempfile.mkdtemp()
        tree = os.path.join(tmp, "tree")
        write_class_folders(tree, per_class_train=6, per_class_test=2)
        base_config = tiny_config(
            os.path.join(tmp, "select"), dataset="class_folders",
            data_dir=os.path.join(tmp, "tfds"), manual_dir=tree, model_widths=[4, 8],
            source="none", scheme="l2", train_steps=6, lr_boundaries=[4], batch_size=6,
            checkpoint_every=0, export=False, examples_per_class=6, split_seed=1)
        opened, phase = [], {"now": None}
        as_dataset = base.ResizedImageBuilder.as_dataset

        def recording_as_dataset(builder, split, *args, **kwargs):
            opened.append((phase["now"], str(split)))
            return as_dataset(builder, split, *args, **kwargs)

        def recording_run(config, **kwargs):
            phase["now"] = "final" if not config.data.cv_folds else "select"
            return driver_run(config, **kwargs)

        # --source=none: every layer is new, so beta (not alpha) is what changes the runs.
        betas, seeds = [1e-4, 1e-2, 1.0], [0, 1]
        with mock.patch.object(base.ResizedImageBuilder, "as_dataset", recording_as_dataset):
            summary, lines = select_model.select(base_config, [0.1], betas, 2, seeds,
                                                 "accuracy", run=recording_run)
        selecting = [split for when, split in opened if when == "select"]
        self.assertIn("train", selecting)
        self.assertNotIn("test", selecting)  # no test image read before the final runs
        self.assertIn(("final", "test"), opened)

        # The choice, recomputed from the fold records on disk.
        pooled = {}
        for beta in betas:
            correct = total = loss = 0.0
            for fold in range(2):
                where = os.path.join(tmp, "select", "select", f"alpha=0.1_beta={beta:g}",
                                     f"fold_{fold}", "results.json")
                with open(where) as f:
                    record = json.load(f)
                self.assertEqual((record["eval_split"], record["flags"]["cv_fold"]),
                                 ("validation", fold))
                self.assertEqual(record["num_train"] + record["num_eval"], 6 * len(CLASSES))
                correct += round(record["accuracy"] * record["num_eval"])
                total += record["num_eval"]
                loss += record["cross_entropy"] * record["num_eval"]
            pooled[beta] = (correct / total, loss / total)
        self.assertLen(set(pooled.values()), len(betas))  # the candidates differ
        expected = min(betas, key=lambda b: (-pooled[b][0], pooled[b][1], b))
        self.assertEqual(summary["chosen"]["beta"], expected)
        for row in summary["candidates"]:
            self.assertAllClose((row["val_accuracy"], row["val_cross_entropy"]),
                                pooled[row["beta"]])

        final = summary["final"]
        self.assertEqual((final["eval_split"], final["seeds"]), ("test", seeds))
        for where in final["runs"]:
            with open(os.path.join(where, "results.json")) as f:
                record = json.load(f)
            self.assertEqual((record["num_train"], record["flags"]["beta"],
                              record["flags"]["cv_folds"]),
                             (6 * len(CLASSES), expected, 0))
        self.assertAllClose(final["std_ddof1"], np.std(final["accuracies"], ddof=1))
        self.assertTrue(any(line.endswith("*") for line in lines))
        self.assertTrue(any("mean +- sample std, ddof=1" in line for line in lines))
