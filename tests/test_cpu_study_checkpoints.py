"""Part ``checkpoints`` of the CPU study: the QUICK part end to end on a tiny fake
Fashion-MNIST (rows, the prefix schedule of the checkpoints, the spectrum against NumPy's
SVD of independently computed features), L2-SP's alpha chosen on validation only, and the
report's tables and claims read from the CSV numbers."""
import json
import math
import os
import tempfile

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tests.test_demo import write_tiny_fashion
from experiments.cpu_study import checkpoints, experiments, protocol
from experiments.cpu_study.report import checkpoints as report
from tftransfer.models.small_resnet import small_resnet



class _Recorder:
    """What ``_select`` uses of a study: ``rows`` and ``run_all``, here answering each
    validation run with ``scores[(checkpoint, alpha)]`` (the checkpoint read from the
    weights path) and recording the validation fraction of each run."""

    def __init__(self, scores, losses):
        self.scores, self.losses, self.rows, self.fractions = scores, losses, {}, []
        self.data_dir = None

    def run_all(self, runs, label):
        out = []
        for run in runs:
            self.fractions.append(run.config.data.validation_fraction)
            key = (float(run.config.model.weights), run.config.penalty.alpha)
            out.append(dict(accuracy=self.scores[key], cross_entropy=self.losses[key],
                            num_eval=30, eval_split="validation",
                            flags={"alpha": key[1], "beta": run.config.penalty.beta}))
        return out


def _csv_tables(rows, directory):
    """``rows`` written as the study writes its CSV files, then read back."""
    os.makedirs(directory, exist_ok=True)
    for name, table in rows.items():
        pd.DataFrame(table).to_csv(os.path.join(directory, f"{name}.csv"), index=False,
                                   float_format="%.6g")
    return {name: pd.read_csv(os.path.join(directory, f"{name}.csv")) for name in rows}


class QuickPartTest(tf.test.TestCase):
    """QUICK on 330 training and 8 test images per class (source: 1650 images, 13 steps
    of 128 per epoch), run once for the class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = tempfile.mkdtemp()
        cls.data_dir = os.path.join(cls.directory, "fashion")
        report_dir = os.path.join(cls.directory, "report")
        write_tiny_fashion(cls.data_dir, per_class_train=330, per_class_test=8)
        cls.config = checkpoints.Config(**checkpoints.QUICK)
        cls.study = experiments.Study.for_part("checkpoints", os.path.join(cls.directory,
                                                                           "runs"),
                                               cls.data_dir, report_dir)
        cls.study.run((), [(checkpoints, cls.config)])
        cls.t = experiments.load_tables(report_dir)  # the part's CSV files, read back

    def sources(self):
        split = protocol.SPLITS[self.config.splits[0]]
        return checkpoints.source_runs(split, self.config.epochs, self.study.root,
                                       self.data_dir, 1650)

    def test_rows_one_per_checkpoint_method_seed(self):
        ck = self.t["checkpoints"]
        c = self.config
        self.assertLen(ck, len(c.epochs) * len(c.methods) * c.seeds + c.seeds)
        self.assertEqual(sorted(set(ck["method"])), sorted(c.methods + ("scratch",)))
        self.assertEqual(set(ck["num_test"]), {5 * 8})  # every tiny test image of 5 classes
        self.assertEqual(set(ck["seed"]), set(range(1, c.seeds + 1)))
        self.assertTrue(((ck["test_accuracy"] >= 0) & (ck["test_accuracy"] <= 1)).all())
        # Source steps: max(1, round(e * ceil(1650 / 128))) = 1, 2 for e = 0.03, 0.12.
        steps = {e: max(1, round(e * math.ceil(1650 / 128))) for e in c.epochs}
        for e, run in self.sources().items():
            rows = ck[ck["epochs"] == e]
            with open(os.path.join(run.config.runtime.output_dir, "results.json")) as f:
                result = json.load(f)
            self.assertEqual(set(rows["source_steps"]), {steps[e]})
            self.assertEqual(result["steps"], steps[e])
            np.testing.assert_allclose(rows["source_accuracy"], result["accuracy"], rtol=1e-5)
        self.assertTrue(ck[ck["method"] == "scratch"]["source_accuracy"].isna().all())

    def test_checkpoints_are_prefixes_of_the_longest_schedule(self):
        runs = self.sources()
        longest = runs[max(runs)].config.optim
        self.assertEqual(longest.lr_boundaries, [longest.train_steps * 2 // 3])
        for run in runs.values():
            o = run.config.optim
            self.assertEqual((o.seed, o.batch_size, o.learning_rate),
                             (longest.seed, longest.batch_size, longest.learning_rate))
            self.assertEqual(o.lr_boundaries,
                             [b for b in longest.lr_boundaries if b < o.train_steps])
        self.assertLen({r.config.runtime.output_dir for r in runs.values()}, len(runs))
        with self.assertRaisesRegex(ValueError, "increasing positive"):
            checkpoints.source_runs(protocol.SPLITS["near"], (1.0, 0.5), "r", None, 100)

    def test_spectrum_is_the_svd_of_the_centred_penultimate_features(self):
        from tftransfer.data import fashion_mnist

        x, y = fashion_mnist.load(self.data_dir)["test"]
        keep = np.isin(y, protocol.SPLITS[self.config.splits[0]].target_classes)
        images = x[keep][..., None].astype(np.float32) / 255.0  # preprocessing "unit"
        spectrum = self.t["checkpoint_spectrum"]
        for e, run in self.sources().items():
            net = small_resnet(num_classes=5)
            net.load_weights(checkpoints.weights_path(run))
            features = keras.Model(net.inputs, net.get_layer("avg_pool").output).predict(
                images, verbose=0).astype(np.float64)
            expected = np.linalg.svd(features - features.mean(0), compute_uv=False)
            rows = spectrum[(spectrum["epochs"] == e) & (spectrum["subset"] == 0)]
            rows = rows.sort_values("index")
            self.assertEqual(set(rows["num_images"]), {len(images)})
            np.testing.assert_allclose(rows["singular_value"], expected, rtol=2e-3,
                                       atol=1e-5)
            np.testing.assert_allclose(rows["normalized"], expected / expected[0], rtol=2e-3,
                                       atol=1e-5)
            parts = spectrum[(spectrum["epochs"] == e) & (spectrum["subset"] > 0)]
            sizes = parts.groupby("subset")["num_images"].first()
            self.assertEqual(sorted(sizes.index), list(range(1, self.config.spectrum_subsets
                                                             + 1)))
            self.assertEqual(int(sizes.sum()), len(images))
        self.assertIn(0.0, set(spectrum["epochs"]))  # the random initialisation

    def test_report_section_reads_the_tables(self):
        lines, figures = report.section(self.t)
        text = "\n".join(lines)
        self.assertIn(f"### {self.config.splits[0]} split", text)
        self.assertIsNotNone(figures["checkpoints_accuracy.png"])
        self.assertIsNotNone(figures[f"checkpoints_spectrum_{self.config.splits[0]}.png"])
        claims = report.claims(self.t)
        self.assertLen(claims, 4)  # FE peak, FT grows, spectrum, papers/000's peak
        from experiments.cpu_study.report import companions
        listed = [c.claim for c in companions.claims(self.t)]
        self.assertTrue(all(c.claim in listed for c in claims))  # the report lists them
        self.assertEqual(report.section({})[0], [])
        self.assertEqual(report.claims({}), [])


def _fake_tables(fe, ft, l2sp, source, shares, scratch=(70.0, 71.0, 69.0), epochs=(0.25, 1, 4)):
    """Hand-made tables: ``fe``/``ft``/``l2sp`` per checkpoint a list of per-seed accuracies
    (%), ``source`` the source accuracy (%) per checkpoint, ``shares`` per checkpoint a list
    of top-4 energy shares (fractions) of the image subsets (spectrum rows built to have
    them: singular values sqrt(share/4) x4 then sqrt((1 - share)/60) x60)."""
    rows, spectrum = [], []
    for e, src, *accs in zip(epochs, source, fe, ft, l2sp):
        for method, values in zip(("linear_probe", "none", "l2_sp"), accs):
            for seed, acc in enumerate(values, start=1):
                rows.append(dict(split="near", checkpoint=f"{e:g}ep", epochs=float(e),
                                 source_steps=1, source_accuracy=src / 100, method=method,
                                 alpha=0.01 if method == "l2_sp" else 0.0, beta=0.01,
                                 seed=seed, test_accuracy=acc / 100, num_test=5000,
                                 train_time_s=1.0))
    for seed, acc in enumerate(scratch, start=1):
        rows.append(dict(split="near", checkpoint="init", epochs=0.0, source_steps=0,
                         source_accuracy=np.nan, method="scratch", alpha=0.0, beta=0.0,
                         seed=seed, test_accuracy=acc / 100, num_test=5000,
                         train_time_s=1.0))
    for e, subset_shares in zip(epochs, shares):
        for subset, share in enumerate([np.mean(subset_shares)] + list(subset_shares)):
            values = np.concatenate([np.full(4, np.sqrt(share / 4)),
                                     np.full(60, np.sqrt((1 - share) / 60))])
            values = np.sort(values)[::-1]
            for i, s in enumerate(values):
                spectrum.append(dict(split="near", checkpoint=f"{e:g}ep", epochs=float(e),
                                     subset=subset, num_images=1000, index=i,
                                     singular_value=s, normalized=s / values[0]))
    selection = [dict(split="near", checkpoint=f"{e:g}ep", epochs=float(e), method="l2_sp",
                      alpha=a, val_accuracy=0.5, num_val=30)
                 for e in epochs for a in (1e-3, 1e-2)]
    return {"checkpoints": rows, "checkpoint_spectrum": spectrum,
            "checkpoint_selection": selection}


BASE = dict(fe=[[80, 81, 79], [86, 85, 87], [78, 79, 77]],
            ft=[[80, 81, 79], [84, 85, 83], [88, 89, 87]],
            l2sp=[[81, 82, 80], [85, 86, 84], [89, 90, 88]],
            source=[90.0, 95.0, 97.0],
            shares=[[0.95, 0.94, 0.96], [0.9, 0.91, 0.89], [0.8, 0.81, 0.79]])


class ClaimsTest(tf.test.TestCase):

    def claims(self, **changes):
        directory = tempfile.mkdtemp(dir=self.get_temp_dir())
        t = _csv_tables(_fake_tables(**{**BASE, **changes}), directory)
        return {(c.paper, c.claim.split(":")[0][:40]): c for c in report.claims(t)}, t

    def verdicts(self, **changes):
        return [c.verdict for c in self.claims(**changes)[0].values()]

    def test_verdicts_follow_the_csv_numbers(self):
        # FE peaks at 1 epoch; FT and L2-SP grow with source accuracy; the top share falls;
        # FT is best at the last checkpoint (papers/000's peak: disagrees).
        self.assertEqual(self.verdicts(), ["agrees", "agrees", "agrees", "agrees",
                                           "disagrees"])
        self.assertIn("best fine-tuning start (highest mean, plain fine-tuning): 4 ep",
                      list(self.claims()[0].values())[0].numbers)
        gain = list(self.claims()[0].values())[4].numbers
        self.assertIn(f"4 ep {np.mean([88, 89, 87]) - 70:+.2f} (2 SE", gain)
        # The last checkpoint becomes the best feature extractor: claim 1 disagrees.
        self.assertEqual(self.verdicts(fe=BASE["fe"][:2] + [[90, 91, 89]])[0], "disagrees")
        # Within noise: cannot tell.
        self.assertEqual(self.verdicts(fe=BASE["fe"][:2] + [[70, 86, 99]])[0], "cannot tell")
        # FT drops clearly at the middle checkpoint: "grows" disagrees, and the peak claim
        # of papers/000 agrees when the middle one is the best.
        dropped = self.verdicts(ft=[[80, 81, 79], [90, 91, 89], [84, 85, 83]])
        self.assertEqual((dropped[1], dropped[4]), ("disagrees", "agrees"))
        # FT flat within noise: cannot tell.
        self.assertEqual(self.verdicts(ft=[[80, 85, 90]] * 3)[1], "cannot tell")
        # The top share rises instead: the spectrum claim disagrees.
        self.assertEqual(self.verdicts(shares=BASE["shares"][::-1])[3], "disagrees")

    def test_perturbing_one_csv_value_changes_the_verdict(self):
        directory = tempfile.mkdtemp(dir=self.get_temp_dir())
        _csv_tables(_fake_tables(**BASE), directory)
        path = os.path.join(directory, "checkpoints.csv")
        frame = pd.read_csv(path)
        load = lambda: {"checkpoints": pd.read_csv(path),
                        "checkpoint_spectrum": pd.read_csv(
                            os.path.join(directory, "checkpoint_spectrum.csv"))}
        self.assertEqual(report.claims(load())[0].verdict, "agrees")
        where = (frame["method"] == "linear_probe") & (frame["epochs"] == 4.0)
        frame.loc[where, "test_accuracy"] = [0.86, 0.87, 0.88]  # the last FE ties the peak
        frame.to_csv(path, index=False)
        self.assertEqual(report.claims(load())[0].verdict, "cannot tell")

    def test_tables_show_mean_and_sample_std_from_the_csv(self):
        claims, t = self.claims()
        text = "\n".join(report.section(t)[0])
        ck = t["checkpoints"]
        for (e, method), group in ck[ck["method"] != "scratch"].groupby(["epochs", "method"]):
            values = 100 * group["test_accuracy"].to_numpy()
            self.assertIn(f"{values.mean():.2f} ± {values.std(ddof=1):.2f}", text)
        row = [line for line in text.splitlines() if line.startswith("| 4 ep")][0]
        ft4, scratch = np.array([88, 89, 87.0]), np.array([70, 71, 69.0])
        gain = ft4.mean() - scratch.mean()
        se = np.sqrt(ft4.var(ddof=1) / 3 + scratch.var(ddof=1) / 3)
        self.assertIn(f"{gain:+.2f} (2 SE {2 * se:.2f})", row)
        self.assertIn("(α 0.01)", row)
        self.assertIn("over 3 seeds", text)
        # Top-4 share of the subsets at 0.25 epochs: 95, 94, 96 %.
        share = [line for line in text.splitlines() if line.startswith("| 0.25 ep")][1]
        self.assertIn(f"95.00 ± {np.std([95, 94, 96], ddof=1):.2f}", share)
        self.assertIn("grid 0.001, 0.01", text)

    def test_top_share_formula(self):
        values = np.array([3.0, 2.0, 1.0, 1.0, 0.5])
        self.assertAlmostEqual(report.top_share(values, 2), 100 * 13 / 15.25)


class SelectionTest(tf.test.TestCase):

    def test_alpha_chosen_per_checkpoint_on_validation_only(self):
        scores = {(0.5, 1e-3): 0.6, (0.5, 0.1): 0.8, (2.0, 1e-3): 0.9, (2.0, 0.1): 0.9}
        losses = {(0.5, 1e-3): 0.5, (0.5, 0.1): 0.6, (2.0, 1e-3): 0.4, (2.0, 0.1): 0.3}
        study = _Recorder(scores, losses)
        config = checkpoints.Config(alpha_grid=(1e-3, 0.1))
        targets = {e: protocol.Target(protocol.SPLITS["near"], protocol.SMALL, 20, 10,
                                      str(e)) for e in (0.5, 2.0)}
        chosen = checkpoints._select(study, config, "near", targets, "root", ["l2_sp"])
        # 0.5 epochs: the higher accuracy; 2 epochs: tied accuracy, the lower cross-entropy.
        self.assertEqual(chosen, {(0.5, "l2_sp"): 0.1, (2.0, "l2_sp"): 0.1})
        losses[(2.0, 1e-3)] = 0.3  # tied on both: the smaller alpha
        chosen = checkpoints._select(study, config, "near", targets, "root", ["l2_sp"])
        self.assertEqual(chosen[(2.0, "l2_sp")], 1e-3)
        self.assertTrue(all(f > 0 for f in study.fractions))  # selection holds images out
        self.assertLen(study.rows["checkpoint_selection"], 8)
        fixed = checkpoints._select(study, checkpoints.Config(alpha_grid=(0.01,)), "near",
                                    targets, "root", ["l2_sp"])
        self.assertEqual(fixed, {(0.5, "l2_sp"): 0.01, (2.0, "l2_sp"): 0.01})
        self.assertLen(study.rows["checkpoint_selection"], 8)  # no selection runs

    def test_selection_refuses_test_records(self):
        study = _Recorder({(0.5, 1e-3): 0.6, (0.5, 0.1): 0.8},
                          {(0.5, 1e-3): 0.5, (0.5, 0.1): 0.6})
        answer = study.run_all
        study.run_all = lambda runs, label: [dict(r, eval_split="test")
                                             for r in answer(runs, label)]
        targets = {0.5: protocol.Target(protocol.SPLITS["near"], protocol.SMALL, 20, 10,
                                        "0.5")}
        with self.assertRaisesRegex(ValueError, "only validation"):
            checkpoints._select(study, checkpoints.Config(alpha_grid=(1e-3, 0.1)), "near",
                                targets, "root", ["l2_sp"])


if __name__ == "__main__":
    tf.test.main()
