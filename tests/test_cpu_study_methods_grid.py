"""Part methods_<split> of the CPU study (experiments/cpu_study/methods_grid.py): every
registry method's grid gives valid driver configs, the k-fold selection pools the folds
and refuses test records, a quick end-to-end run on tiny data, and a report section whose
numbers come from the CSV tables."""
import io
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from tests.test_demo import write_tiny_fashion
from tftransfer import methods as methods_lib
from tftransfer.training import config as config_lib
from experiments.cpu_study import experiments, methods_grid, protocol
from experiments.cpu_study.report import methods_table


def _target(weights, n=20, steps=300):
    return protocol.Target(protocol.SPLITS["far"], protocol.SMALL, n, steps, weights)


class GridTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.weights = os.path.join(self.get_temp_dir(), "source.weights.h5")
        open(self.weights, "wb").close()  # validate() checks that the file exists

    def test_every_registry_method_has_a_grid_around_its_default(self):
        self.assertCountEqual(methods_grid.KNOBS, methods_lib.names())
        for m in ("delta_fm", "delta", "bss", "lwf", "co_tuning", "spd"):
            name = {"bss": "eta", "lwf": "lambda", "co_tuning": "lambda",
                    "spd": "strength"}.get(m, "alpha")
            default = methods_lib.get(m).hyper_parameters[name]
            values = [list(v.values())[0] for v in methods_grid.grid(m)]
            np.testing.assert_allclose(values, np.array([0.1, 1.0, 10.0]) * default)
        for m in methods_grid.KNOBS:
            flags = {flag for value in methods_grid.grid(m) for flag in value}
            self.assertEqual(flags, {methods_grid.knob(m).flag}, m)
            # The flag is the method's own (the driver refuses another method's).
            self.assertIn(methods_grid.knob(m).flag,
                          config_lib.MethodConfig.PARAMETERS[m].values())
        with self.assertRaisesRegex(ValueError, "no selected hyper-parameter"):
            methods_grid.grid("l2_sp")

    def test_every_selection_and_final_config_is_valid_and_sets_the_value(self):
        target, folds = _target(self.weights), 3
        for m in methods_grid.METHODS:
            runs = methods_grid.selection_configs(target, m, "root", None, folds)
            expected = folds if methods_grid.knob(m).in_run else folds * len(
                methods_grid.grid(m))
            self.assertLen(runs, expected)
            dirs = {r.run.config.runtime.output_dir for r in runs}
            self.assertLen(dirs, len(runs))  # one run directory per value and fold
            for r in runs:
                c = r.run.config
                config_lib.validate(c)
                self.assertEqual(c.method.method, m)
                self.assertEqual((c.data.cv_folds, c.data.validation_fraction), (folds, 0.0))
                self.assertEqual(r.run.inputs.test_examples_per_class, 0)
                if not methods_grid.knob(m).in_run:
                    (flag, v), = r.values[0].items()
                    self.assertEqual(config_lib.get(c, flag), v)
            self.assertEqual(sorted(r.fold for r in runs),
                             sorted(list(range(folds)) * (len(runs) // folds)))
            value = methods_grid.grid(m)[-1]
            finals = methods_grid.final_configs(target, m, value, 2, "root", None)
            for seed, job in zip((1, 2), finals):
                c = config_lib.validate(job.config)
                (flag, v), = value.items()
                self.assertEqual(config_lib.get(c, flag), v)
                self.assertEqual((c.data.cv_folds, c.data.validation_fraction), (0, 0.0))
                self.assertEqual(c.optim.seed, seed)
        wise = methods_grid.selection_configs(target, "wise_ft", "root", None, 2)[0]
        self.assertEqual(wise.run.config.method.wise_ft_grid,
                         [i / 10 for i in range(11)])
        none = methods_grid.final_configs(target, "none", None, 1, "root", None)
        self.assertEqual(none[0].config.method.method, "none")
        self.assertEqual(none[0].config.penalty.scheme, "none")

    def test_method_fields_with_sets_the_value_on_the_protocol_fields(self):
        fields = methods_grid.method_fields_with("bss", {"bss_eta": 0.5})
        self.assertEqual(fields, {**protocol.method_fields("bss", 0.0, protocol.BETA,
                                                           protocol.SMALL, None),
                                  "bss_eta": 0.5})
        fields = methods_grid.method_fields_with("l2_sp_k", {"alpha": 0.003})
        self.assertEqual((fields["alpha"], fields["beta"]), (0.003, protocol.BETA))
        with self.assertRaisesRegex(ValueError, "pgm_gamma"):
            methods_grid.method_fields_with("mars_pgm", {"alpha": 1.0})

    def test_the_default_config_plans_its_runs(self):
        select, finals = methods_grid.planned_runs(methods_grid.Config())
        self.assertEqual(select, 3 * 3 * 12 + 3)
        self.assertEqual(finals, 5 * 14)


def _fold_record(method, flag, value, accuracy, n, loss, split="validation"):
    return {"accuracy": accuracy, "num_eval": n, "cross_entropy": loss, "eval_split": split,
            "flags": {flag: value, "method": method}, "output_dir": f"{method}_{value}"}


class ChooseTest(tf.test.TestCase):

    def _jobs(self, method, values, folds):
        return [methods_grid.SelectionRun(method, [{methods_grid.knob(method).flag: v}],
                                          f, None) for v in values for f in range(folds)]

    def test_pooled_accuracy_then_cross_entropy_then_the_weaker_value(self):
        rng = np.random.default_rng(3)
        values, folds = [1e-4, 1e-3, 1e-2], 3
        n = rng.integers(5, 9, size=(3, folds))
        correct = np.minimum(rng.integers(2, 9, size=(3, folds)), n)
        loss = rng.uniform(0.2, 2.0, size=(3, folds))
        records = [_fold_record("bss", "bss_eta", v, correct[i, f] / n[i, f], n[i, f],
                                loss[i, f]) for i, v in enumerate(values) for f in range(folds)]
        chosen, candidates = methods_grid.choose("bss", self._jobs("bss", values, folds),
                                                 records)
        pooled = correct.sum(1) / n.sum(1)  # every validation image counted once
        pooled_loss = (loss * n).sum(1) / n.sum(1)
        np.testing.assert_allclose([c.accuracy for c in candidates], pooled)
        np.testing.assert_allclose([c.cross_entropy for c in candidates], pooled_loss)
        order = sorted(range(3), key=lambda i: (-pooled[i], pooled_loss[i], values[i]))
        self.assertEqual(chosen, {"bss_eta": values[order[0]]})

        # Equal accuracy: the lower cross-entropy; equal both: the weaker value.
        same = [_fold_record("bss", "bss_eta", v, 0.5, 10, l)
                for v, l in ((1e-4, 0.9), (1e-3, 0.7), (1e-2, 0.8))]
        self.assertEqual(methods_grid.choose("bss", self._jobs("bss", values, 1), same)[0],
                         {"bss_eta": 1e-3})
        tie = [_fold_record("bss", "bss_eta", v, 0.5, 10, 0.7) for v in values]
        self.assertEqual(methods_grid.choose("bss", self._jobs("bss", values, 1), tie)[0],
                         {"bss_eta": 1e-4})
        radii = [0.05, 0.5, 5.0]  # a radius: the weaker is the larger
        tie = [_fold_record("mars_pgm", "pgm_gamma", v, 0.5, 10, 0.7) for v in radii]
        self.assertEqual(methods_grid.choose("mars_pgm", self._jobs("mars_pgm", radii, 1),
                                             tie)[0], {"pgm_gamma": 5.0})

    def test_refuses_any_record_not_evaluated_on_validation(self):
        records = [_fold_record("bss", "bss_eta", 1e-3, 0.5, 10, 0.7),
                   _fold_record("bss", "bss_eta", 1e-2, 0.9, 10, 0.3, split="test")]
        with self.assertRaisesRegex(ValueError, "only validation accuracies"):
            methods_grid.choose("bss", self._jobs("bss", [1e-3, 1e-2], 1), records)
        wise = {"accuracy": 0.5, "num_eval": 10, "cross_entropy": 1.0, "eval_split": "test",
                "flags": {}, "wise_ft": {"eval_split": "test", "grid": [
                    {"alpha": 0.0, "accuracy": 0.9, "cross_entropy": 0.1}]}}
        job = methods_grid.SelectionRun("wise_ft", methods_grid.grid("wise_ft"), 0, None)
        with self.assertRaisesRegex(ValueError, "only validation accuracies"):
            methods_grid.choose("wise_ft", [job], [wise])

    def test_wise_ft_pools_each_coefficient_of_the_in_run_grid(self):
        grid = [0.0, 0.5, 1.0]
        acc = np.array([[0.4, 0.8, 0.6], [0.5, 0.6, 0.7]])  # fold x coefficient
        loss = np.array([[1.0, 0.5, 0.6], [0.9, 0.7, 0.5]])
        n = [10, 8]
        jobs, records = [], []
        for f in range(2):
            jobs.append(methods_grid.SelectionRun("wise_ft", [{"wise_ft_alpha": a}
                                                              for a in grid], f, None))
            records.append({"accuracy": acc[f, 0], "num_eval": n[f], "cross_entropy": 0.0,
                            "eval_split": "validation", "flags": {}, "wise_ft": {
                                "eval_split": "validation", "grid": [
                                    {"alpha": a, "accuracy": acc[f, i],
                                     "cross_entropy": loss[f, i]}
                                    for i, a in enumerate(grid)]}})
        chosen, candidates = methods_grid.choose("wise_ft", jobs, records)
        pooled = (np.round(acc * np.array(n)[:, None]).sum(0)) / sum(n)
        np.testing.assert_allclose([c.accuracy for c in candidates], pooled)
        self.assertEqual(chosen, {"wise_ft_alpha": grid[int(np.argmax(pooled))]})


def _runs_frame(accuracies, flag="bss_eta", value=1e-3):
    rows = []
    for method, values in accuracies.items():
        for seed, a in enumerate(values, 1):
            rows.append(dict(split="far", examples_per_class=20, steps=300, method=method,
                             flag="" if method == "none" else flag,
                             value=np.nan if method == "none" else value, seed=seed,
                             test_accuracy=a, test_cross_entropy=0.5, num_test=5000,
                             eval_split="test", train_time_s=20.0))
    return pd.DataFrame(rows)


def _csv(frame):
    return pd.read_csv(io.StringIO(frame.to_csv(index=False, float_format="%.6g")))


class PartTest(tf.test.TestCase):

    def test_quick_part_on_tiny_data_and_its_section(self):
        data_dir = os.path.join(self.get_temp_dir(), "fashion")
        write_tiny_fashion(data_dir)
        out = self.get_temp_dir()
        study = experiments.Study.for_part("methods_far", os.path.join(out, "runs"),
                                           data_dir, os.path.join(out, "report"))
        config = methods_grid.Config(**{**methods_grid.QUICK, "methods": ("bss",),
                                        "grids": {"bss": (1e-3,)}, "steps": 2})
        study.run((), [(methods_grid, config)])
        t = experiments.load_tables(os.path.join(out, "report"))  # the CSV files
        sel, runs = t["methods_selection"], t["methods_runs"]
        self.assertEqual(list(sel["value"]), [1e-3])
        self.assertEqual(sel["folds"].tolist(), [2])
        # 6 labelled images per class x 5 classes, each validated once over the 2 folds.
        self.assertEqual(sel["num_val"].tolist(), [30])
        self.assertTrue(sel["chosen"].all())
        self.assertCountEqual(runs["method"], ["none", "none", "bss", "bss"])
        self.assertEqual(set(runs["eval_split"]), {"test"})
        self.assertEqual(set(runs["num_test"]), {20})  # the tiny data's 4 per class
        self.assertEqual(set(runs[runs["method"] == "bss"]["value"]), {1e-3})

        lines, figures = methods_table.section(t)
        text = "\n".join(lines)
        bss = 100 * runs[runs["method"] == "bss"]["test_accuracy"].to_numpy()
        self.assertIn(f"{bss.mean():.2f} ± {bss.std(ddof=1):.2f}", text)
        self.assertIn("--bss_eta=0.001", text)
        self.assertIn("methods_selection_far.png", figures)
        self.assertLen(methods_table.claims(t), 1)

    def test_section_and_claims_read_the_csv_numbers(self):
        none = [0.870, 0.875, 0.880, 0.872, 0.878]
        runs = _runs_frame({"none": none, "bss": [0.871, 0.874, 0.879, 0.873, 0.877]})
        lines, _ = methods_table.section({"methods_runs": _csv(runs),
                                          "methods_selection": pd.DataFrame()})
        text = "\n".join(lines)
        a, b = 100 * np.array(none), 100 * runs[runs["method"] == "bss"][
            "test_accuracy"].to_numpy()
        d = b.mean() - a.mean()
        se = np.sqrt(a.var(ddof=1) / 5 + b.var(ddof=1) / 5)
        self.assertIn(f"{a.mean():.2f} ± {a.std(ddof=1):.2f}", text)
        self.assertIn(f"{d:+.2f} ± {2 * se:.2f}: no clear difference", text)
        self.assertIn("seeds 1, 2, 3, 4, 5 (5 seeds)", text)
        claim, = methods_table.claims({"methods_runs": _csv(runs)})
        self.assertEqual(claim.verdict, "cannot tell")
        self.assertEqual(claim.paper, methods_lib.get("bss").paper)

        better = _runs_frame({"none": none, "bss": [0.900, 0.905, 0.903, 0.901, 0.904]})
        claim, = methods_table.claims({"methods_runs": _csv(better)})
        self.assertEqual(claim.verdict, "agrees")
        worse = _runs_frame({"none": none, "bss": [0.800, 0.805, 0.803, 0.801, 0.804]})
        claim, = methods_table.claims({"methods_runs": _csv(worse)})
        self.assertEqual(claim.verdict, "disagrees")
        # Two parts' rows (methods_far, methods_near) concatenated: one table per split.
        near = better.assign(split="near")
        both = _csv(pd.concat([runs, near], ignore_index=True))
        lines, _ = methods_table.section({"methods_runs": both})
        self.assertLen([l for l in lines if l.startswith("**")], 2)
        verdicts = {c.claim.split("(")[1].split(" split")[0]: c.verdict
                    for c in methods_table.claims({"methods_runs": both})}
        self.assertEqual(verdicts, {"far": "cannot tell", "near": "agrees"})
        self.assertEqual(methods_table.section({"methods_runs": pd.DataFrame()}), ([], {}))
        self.assertEqual(methods_table.claims({}), [])

    def test_selection_curves_read_the_selection_table(self):
        sel = pd.DataFrame([dict(split="far", examples_per_class=20, steps=300, method="lwf",
                                 flag="lwf_lambda", value=v, folds=3, num_val=30,
                                 val_accuracy=a, val_cross_entropy=ce, chosen=c)
                            for v, a, ce, c in ((0.1, 0.8, 0.6, False), (1.0, 0.9, 0.4, True),
                                                (10.0, 0.7, 0.9, False))])
        runs = _runs_frame({"none": [0.8, 0.81], "lwf": [0.82, 0.83]}, "lwf_lambda", 1.0)
        lines, figures = methods_table.section({"methods_runs": _csv(runs),
                                                "methods_selection": _csv(sel)})
        self.assertIn("0.1: 80.0 / 0.600; 1: 90.0 / 0.400 *; 10: 70.0 / 0.900",
                      "\n".join(lines))
        fig = figures["methods_selection_far.png"]
        ax = fig.axes[0]
        np.testing.assert_allclose(ax.lines[0].get_ydata(), [80.0, 90.0, 70.0])
        np.testing.assert_allclose(ax.lines[1].get_xdata(), [1.0])  # the chosen value


if __name__ == "__main__":
    tf.test.main()
