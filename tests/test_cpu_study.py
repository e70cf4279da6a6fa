"""The CPU study (experiments/cpu_study): selection only on validation accuracy, the protocol's
run configurations, a report whose numbers come from its CSV files, and the --quick study
end to end on the real Fashion-MNIST files."""
import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import tensorflow as tf

from tests.test_demo import write_tiny_fashion
from experiments.cpu_study import experiments, pool as pool_lib, protocol, report
from tftransfer.training import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _record(accuracy, alpha, split="validation", num_eval=20, cross_entropy=0.5, beta=0.01):
    return {"accuracy": accuracy, "eval_split": split, "num_eval": num_eval,
            "cross_entropy": cross_entropy, "flags": {"alpha": alpha, "beta": beta},
            "output_dir": f"run_{alpha}"}


class CrossValidationTest(tf.test.TestCase):

    def test_folds_pooled_ties_to_the_lower_cross_entropy(self):
        # alpha 0.1: folds 18/20 + 16/20 = 34/40; alpha 0.01: 17/20 + 17/20 = 34/40 (a tie
        # on accuracy, lower cross-entropy: 0.01 wins); alpha 1: 30/40, lowest loss.
        records = [_record(0.9, 0.1, cross_entropy=0.4), _record(0.8, 0.1, cross_entropy=0.6),
                   _record(0.85, 0.01, cross_entropy=0.3), _record(0.85, 0.01, cross_entropy=0.5),
                   _record(0.75, 1.0, cross_entropy=0.1), _record(0.75, 1.0, cross_entropy=0.2)]
        candidates, by_accuracy, by_loss = experiments.cross_validated(records)
        pooled = {c.value["alpha"]: (c.accuracy, c.cross_entropy, c.num_eval) for c in candidates}
        self.assertAllClose(pooled[0.1], (34 / 40, 0.5, 40))
        self.assertAllClose(pooled[0.01], (34 / 40, 0.4, 40))
        self.assertEqual(by_accuracy.value["alpha"], 0.01)
        self.assertEqual(by_loss.value["alpha"], 1.0)
        # Equal on both measures: the smaller alpha.
        tied = [_record(0.5, 0.1), _record(0.5, 0.001)]
        self.assertEqual(experiments.cross_validated(tied)[1].value["alpha"], 0.001)

    def test_refuses_any_record_not_evaluated_on_validation(self):
        records = [_record(0.8, 0.1), _record(0.99, 0.01, split="test")]
        with self.assertRaisesRegex(ValueError, "only validation accuracies"):
            experiments.cross_validated(records)

    def test_choices_only_among_the_main_beta(self):
        records = [_record(0.9, 0.1, beta=0.1), _record(0.5, 0.01)]
        candidates, by_accuracy, _ = experiments.cross_validated(records)
        self.assertEqual(len(candidates), 2)
        self.assertEqual(by_accuracy.value, {"alpha": 0.01, "beta": 0.01})


class PoolTest(tf.test.TestCase):

    def test_results_in_input_order_with_progress(self):
        for workers in (1, 2):
            seen = []
            pool = pool_lib.Pool(workers)
            try:
                out = pool.map(abs, [-3, 1, -2], lambda i, r: seen.append((i, r)))
            finally:
                pool.close()
            self.assertEqual(out, [3, 1, 2])
            self.assertCountEqual(seen, [(0, 3), (1, 1), (2, 2)])

    def test_runs_sharing_a_model_are_grouped_costliest_first(self):
        target = protocol.Target(protocol.SPLITS["far"], protocol.SMALL, 20, 300, "w.h5")
        longer = protocol.Target(protocol.SPLITS["far"], protocol.SMALL, 20, 900, "w.h5")
        configs = [protocol.target_config(target, "l2_sp", 0.1, seed, "root", None, False,
                                          save_weights=seed == 1)
                   for seed in (1, 2, 3)]
        configs.append(protocol.target_config(target, "l2_sp", 0.01, 1, "root", None, False))
        configs.append(protocol.target_config(longer, "none", 0.0, 1, "root", None, False))
        # Seeds and outputs differ within a group; alpha and the learning-rate schedule
        # (lr_boundaries, set by the length) are model options.
        self.assertEqual(pool_lib.by_model(configs), [[0, 1, 2], [4], [3]])


class ProtocolTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.target = protocol.Target(protocol.SPLITS["near"], protocol.SMALL, 20, 300,
                                      "source.weights.h5", "fisher.npz")

    def config(self, method, select=False, alpha=0.1, **kwargs):
        return protocol.target_config(self.target, method, alpha, 3, "root", None, select,
                                      **kwargs)

    def test_fold_runs_are_cross_validation_runs_of_their_own(self):
        folds = [self.config("l2_sp", select=True, folds=5, fold=i) for i in range(5)]
        self.assertEqual({(r.config.data.cv_folds, r.config.data.cv_fold) for r in folds},
                         {(5, i) for i in range(5)})
        self.assertEqual({r.config.data.validation_fraction for r in folds}, {0.0})
        self.assertEqual(len({r.config.runtime.output_dir for r in folds}), 5)
        final = self.config("l2_sp", folds=5, fold=0)  # a final run ignores the folds
        self.assertEqual((final.config.data.cv_folds, final.config.data.cv_fold), (0, None))

    def test_selection_runs_hold_out_validation_and_finals_use_all_images(self):
        select, final = self.config("l2_sp", select=True), self.config("l2_sp")
        self.assertGreater(select.config.data.validation_fraction, 0)
        self.assertEqual(final.config.data.validation_fraction, 0.0)
        self.assertNotEqual(select.config.runtime.output_dir, final.config.runtime.output_dir)
        self.assertEqual(final.config.data.classes, [1, 3, 4, 6, 9])
        self.assertEqual(final.config.model.source_classes, 5)
        self.assertEqual(final.config.optim.lr_boundaries, [200])
        self.assertEqual(final.inputs.pad, 2)
        self.assertEqual(final.inputs.source_classes, (0, 2, 5, 7, 8))

    def test_study_inputs_are_part_of_the_identity(self):
        """Padding, the RGB channel and the test subset change the result: a run with other
        study inputs is another run (own identity, own default directory)."""
        from tftransfer.training import identity
        run = self.config("l2_sp")
        padded = dataclasses.replace(run.inputs, pad=run.inputs.pad + 1)
        self.assertNotEqual(identity.digest(run.config, run.inputs),
                            identity.digest(run.config, padded))
        self.assertNotEqual(identity.digest(run.config, run.inputs),
                            identity.digest(run.config))
        self.assertEqual(identity.of(run.config, run.inputs)["inputs"]["pad"], run.inputs.pad)

    def flags(self, method, **kwargs):
        return config_lib.to_dict(self.config(method, **kwargs).config)

    def test_method_fields(self):
        scratch = self.flags("scratch")
        self.assertEqual((scratch["source"], scratch["weights"], scratch["scheme"]),
                         ("none", None, "none"))
        probe = self.flags("linear_probe")
        self.assertEqual(probe["freeze_units"], len(protocol.SMALL.units))
        self.assertTrue(probe["freeze_batch_norm"])
        self.assertEqual((probe["scheme"], probe["alpha"], probe["beta"]),
                         ("l2", 0.0, protocol.BETA))
        frozen = self.flags("freeze2_l2_sp")
        self.assertEqual((frozen["scheme"], frozen["freeze_units"], frozen["alpha"]),
                         ("l2_sp", 2, 0.1))
        fisher = self.flags("group_lasso_sp_fisher")
        self.assertEqual(fisher["fisher_file"], "fisher.npz")
        self.assertIsNone(self.flags("l2_sp")["fisher_file"])
        self.assertEqual(self.flags("lr_mult")["lr_multipliers"],
                         ["stem=0.01", "stage1_block1=0.01", "stage2_block1=0.1",
                          "stage3_block1=0.1"])

    def test_every_registry_method_is_a_valid_driver_run_by_name(self):
        from tftransfer import methods
        self.assertEqual(set(protocol.REGISTRY_METHODS), set(methods.names()))
        self.assertTrue(set(protocol.REGISTRY_METHODS) <= set(protocol.ALL_METHODS))
        weights = os.path.join(self.get_temp_dir(), "source.weights.h5")
        open(weights, "wb").close()  # validation checks that the file exists
        self.target = dataclasses.replace(self.target, weights=weights)
        for name in protocol.REGISTRY_METHODS:
            run = self.config(name)
            config_lib.validate(run.config)  # raises on a refused combination
            flags = config_lib.to_dict(run.config)
            self.assertEqual(flags["method"], name)
            self.assertEqual(flags["scheme"], "none")
            tuned = name in ("l2_sp_k", "group_lasso_sp_layer")
            self.assertEqual(protocol.is_tuned(name), tuned, name)
            self.assertEqual((flags["alpha"], flags["beta"]),
                             (0.1, protocol.BETA) if tuned else (0.0, 0.0), name)
        self.assertEqual(self.flags("l2_sp")["method"], "none")

    def test_source_eval_only_when_asked(self):
        self.assertIsNone(self.flags("l2")["source_eval_dataset"])
        asked = self.config("l2", source_eval=True)
        self.assertEqual(asked.config.evaluation.source_eval_dataset, "fashion_mnist")
        self.assertEqual(asked.inputs.source_classes, (0, 2, 5, 7, 8))


def _fake_tables(directory):
    """Small hand-made CSV tables and part.json files, as the study's parts write them
    (``parts/sources``, ``parts/main_far``, ``parts/main_near``)."""
    rng = np.random.default_rng(0)
    rows = {"far": [], "near": []}
    for split in ("far", "near"):
        for method, alpha in (("scratch", 0.0), ("none", 0.0), ("l2", 0.01), ("l2_sp", 0.1)):
            for seed in (1, 2, 3):
                rows[split].append(dict(
                    experiment="main", arm="small_resnet", split=split, examples_per_class=20,
                    steps=300, method=method, alpha=alpha, beta=0.01, freeze_units=0,
                    seed=seed, test_accuracy=rng.uniform(0.7, 0.9), num_test=5000,
                    source_accuracy_before=0.9, source_accuracy_after=0.5,
                    source_drop=rng.uniform(10, 40), distance=rng.uniform(0, 0.1),
                    train_time_s=1.0))
    settings = dict(vars(experiments.Settings()))
    settings.update(methods=["scratch", "none", "l2", "l2_sp"], seeds=3)

    def part(name, splits, tables):
        out = os.path.join(directory, "parts", name)
        os.makedirs(out, exist_ok=True)
        for table, frame in tables.items():
            frame.to_csv(os.path.join(out, f"{table}.csv"), index=False)
        with open(os.path.join(out, "part.json"), "w") as f:
            json.dump({"part": name, "command": f"python -m experiments.cpu_study --part={name}",
                       "settings": {**settings, "splits": splits}, "wall_time_s": 60.0,
                       "phase_seconds": {"main": 60.0}, "runs_trained": 12, "runs_reused": 0,
                       "run_seconds": 100.0, "cpu_count": 2}, f)

    part("sources", ["far", "near"], {"sources": pd.DataFrame([dict(
        split=s, source_classes="0 1", target_classes="5 6", train_images=100, steps=10,
        source_test_accuracy=0.9, train_time_s=1.0) for s in ("far", "near")])})
    for split in ("far", "near"):
        part(f"main_{split}", [split], {"runs": pd.DataFrame(rows[split])})
    return pd.DataFrame(rows["far"] + rows["near"])


def main_table(text):
    """``{(method label, column index): cell}`` of the README's main table."""
    section = text.split("## Main results")[1].split("\n\n")[2]
    cells = {}
    for line in section.splitlines()[2:]:
        parts = [p.strip() for p in line.strip("|").split("|")]
        for i, cell in enumerate(parts[1:]):
            cells[(parts[0], i)] = cell
    return cells


class ReportTest(tf.test.TestCase):

    def test_numbers_and_comparisons_come_from_the_csv(self):
        directory = self.get_temp_dir()
        runs = _fake_tables(directory)
        text = open(report.write_report(directory)).read()
        cells = main_table(text)
        for (split, method), group in runs.groupby(["split", "method"]):
            values = 100 * group["test_accuracy"].to_numpy()
            expected = f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"
            column = ["far", "near"].index(split)
            self.assertTrue(cells[(report.label(method), column)].startswith(expected),
                            (split, method, cells[(report.label(method), column)], expected))
        for split in ("far", "near"):
            sub = runs[runs["split"] == split]
            diff = 100 * (sub[sub["method"] == "l2_sp"]["test_accuracy"].mean()
                          - sub[sub["method"] == "l2"]["test_accuracy"].mean())
            self.assertIn(f"{split} {diff:+.2f}", text.split("L2-SP beats L2")[1].split("\n")[0])
        self.assertTrue(os.path.exists(os.path.join(directory, "main_accuracy.png")))
        again = open(report.write_report(directory)).read()
        self.assertEqual(text, again)

    def test_claim_words_follow_the_two_standard_error_rule(self):
        self.assertEqual(report.compare((80.0, 1.0, 5), (70.0, 1.0, 5))[2], "higher")
        self.assertEqual(report.compare((70.0, 1.0, 5), (80.0, 1.0, 5))[2], "lower")
        self.assertEqual(report.compare((80.0, 5.0, 2), (79.0, 5.0, 2))[2],
                         "no clear difference")


class QuickStudyTest(tf.test.TestCase):
    """``experiments/cpu_study --quick`` end to end on a tiny fake Fashion-MNIST (30 training
    and 8 test images per class), four methods, without the ImageNet arm (the EfficientNet
    driver path has its own tests)."""

    def test_quick_study_writes_a_report_that_matches_its_csv(self):
        directory = tempfile.mkdtemp(dir=self.get_temp_dir())
        data_dir, report_dir = os.path.join(directory, "fashion"), os.path.join(directory,
                                                                                 "report")
        write_tiny_fashion(data_dir, per_class_train=30, per_class_test=8)
        # The parts of the paper's own experiments and the segmentation part; the parts
        # with a module of their own (methods_<split>, checkpoints, transferability) run
        # --quick in their own test files (tests/test_cpu_study_<part>.py) and the ImageNet
        # arm's driver path in tests/test_train_*: one process running them all took 306 s.
        command = [sys.executable, "-m", "experiments.cpu_study", "--quick",
                   "--part=sources,main_far,axes,segmentation",
                   "--methods=scratch,none,l2_sp,l2_sp_fisher", "--noimagenet",
                   f"--data_dir={data_dir}", f"--output_dir={directory}",
                   f"--report_dir={report_dir}"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                timeout=900)
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-3000:])
        text = open(os.path.join(report_dir, "README.md")).read()
        tables = experiments.load_tables(report_dir)
        runs, selection, cv = tables["runs"], tables["selection"], tables["cv"]
        self.assertTrue(os.path.exists(os.path.join(report_dir, "parts", "main_far",
                                                    "part.json")))
        # Selection is 2-fold cross-validation of the 100 labelled images (50 per fold),
        # never on the 40 test images; finals are scored on the test images.
        main_selection = selection[selection["experiment"] == "main"]
        self.assertEqual(set(main_selection["num_val"]), {50})
        self.assertEqual(set(main_selection["fold"]), {0, 1})
        finals = runs[runs["experiment"].isin(["main", "main_ce"])]
        self.assertEqual(set(finals["num_test"]), {40})
        main = runs[runs["experiment"] == "main"]
        self.assertEqual(sorted(set(main["method"])), ["l2_sp", "l2_sp_fisher", "none",
                                                       "scratch"])
        self.assertEqual(len(main), 8)  # 4 methods x 2 seeds
        ran = set(os.listdir(os.path.join(report_dir, "parts")))
        self.assertEqual(ran, {"sources", "main_far", "axes", "segmentation"})
        # The segmentation part is the scene study: its own checks on its directory (its
        # methods are those --methods keeps: none and L2-SP).
        from tests.test_scene_study import check_quick_study
        check_quick_study(self, os.path.join(directory, "scene_study"),
                          os.path.join(report_dir, "parts", "segmentation"),
                          methods=("none", "l2_sp"))
        cells = main_table(text)
        for method, group in main.groupby("method"):
            values = 100 * group["test_accuracy"].to_numpy()
            expected = f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"
            self.assertTrue(cells[(report.label(method), 0)].startswith(expected))
        # The chosen alpha, recomputed from the per-fold rows: correct images pooled over
        # the folds, ties to the lower pooled cross-entropy, then the smaller alpha.
        for method in ("l2_sp", "l2_sp_fisher"):
            folds = main_selection[(main_selection["method"] == method)
                                   & (main_selection["beta"] == 0.01)].copy()
            folds["correct"] = (folds["val_accuracy"] * folds["num_val"]).round()
            folds["loss_sum"] = folds["val_cross_entropy"] * folds["num_val"]
            pooled = folds.groupby("alpha")[["correct", "num_val", "loss_sum"]].sum()
            pooled["accuracy"] = pooled["correct"] / pooled["num_val"]
            pooled["loss"] = pooled["loss_sum"] / pooled["num_val"]
            best = pooled.reset_index().sort_values(["accuracy", "loss", "alpha"],
                                                    ascending=[False, True, True]).iloc[0]
            chosen = main[main["method"] == method]["alpha"].iloc[0]
            self.assertEqual(chosen, best["alpha"], method)
            mine = cv[(cv["experiment"] == "main") & (cv["method"] == method)]
            self.assertAllClose(mine.sort_values("alpha")["val_accuracy"].to_numpy(),
                                pooled.sort_index()["accuracy"].to_numpy())
        for name in ("main_accuracy.png", "fisher.png", "r2_far.png", "landscape_far.png",
                     "length.png", "freeze.png", "selection_curves.png"):
            self.assertTrue(os.path.exists(os.path.join(report_dir, name)), name)
        # The alpha x beta heatmap is drawn only when its cells differ (else a sentence).
        self.assertEqual(os.path.exists(os.path.join(report_dir, "figure1_alpha_beta.png")),
                         "](figure1_alpha_beta.png)" in text)
        self.assertIn("--quick", text)
        # Redrawn in this process (what --report_only runs), from the CSV files alone.
        self.assertEqual(open(report.write_report(report_dir)).read(), text)


if __name__ == "__main__":
    tf.test.main()


class CommittedReportTest(tf.test.TestCase):
    """The committed report (docs/cpu_study) is the one its committed CSV files give, and its
    main claims read those files: the page is redrawn from a copy of the directory and must
    be the same text; the main table, the saturation count of the cross-validation and the
    version-1 comparison are recomputed here with pandas/NumPy."""

    def setUp(self):
        super().setUp()
        self.source = os.path.join(ROOT, "docs", "cpu_study")
        if not os.path.exists(os.path.join(self.source, "parts")):
            self.skipTest("no committed version-2 report")

    def test_redrawn_from_the_csv_files_it_is_the_same_page(self):
        import shutil
        copy = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "cpu_study")
        shutil.copytree(self.source, copy)
        committed = open(os.path.join(self.source, "README.md")).read()
        self.assertEqual(open(report.write_report(copy)).read(), committed)

    def test_main_table_and_selection_claims_read_the_csv(self):
        text = open(os.path.join(self.source, "README.md")).read()
        tables = experiments.load_tables(self.source)
        runs, cv = tables["runs"], tables["cv"]
        main = runs[runs["experiment"] == "main"]
        splits = [x for x in protocol.SPLITS if x in set(main["split"])]
        cells = main_table(text)
        for (split, method), group in main.groupby(["split", "method"]):
            values = 100 * group["test_accuracy"].to_numpy()
            expected = f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"
            cell = cells[(report.label(method), splits.index(split))]
            self.assertTrue(cell.startswith(expected), (split, method, cell, expected))
        picked = cv[(cv["experiment"] == "main") & (cv["beta"] == 0.01)]
        flat = sum(g["val_accuracy"].nunique() == 1
                   for _, g in picked.groupby(["split", "method"]))
        self.assertIn(f"The pooled accuracy is the same at every alpha for {flat} of "
                      f"{picked.groupby(['split', 'method']).ngroups} selections", text)
        old = tables["v1_runs"]
        if old.empty:
            return
        old = old[old["experiment"] == "main"]
        line = [l for l in text.splitlines() if l.startswith("- L2-SP vs fine-tuning")][0]
        for split in splits:
            d_new = 100 * (main[(main["split"] == split) & (main["method"] == "l2_sp")]
                           ["test_accuracy"].mean()
                           - main[(main["split"] == split) & (main["method"] == "none")]
                           ["test_accuracy"].mean())
            d_old = 100 * (old[(old["split"] == split) & (old["method"] == "l2_sp")]
                           ["test_accuracy"].mean()
                           - old[(old["split"] == split) & (old["method"] == "none")]
                           ["test_accuracy"].mean())
            self.assertIn(f"({d_old:+.2f}), v2", line.split(f"{split}: v1")[1])
            self.assertIn(f"({d_new:+.2f})", line.split(f"{split}: v1")[1].split(";")[0])
