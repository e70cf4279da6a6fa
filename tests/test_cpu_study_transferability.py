"""Part ``transferability`` of the CPU study (Liu et al. 2019): the quick part end to end on a
tiny fake Fashion-MNIST, its numbers against independent NumPy formulas, and a report whose
claims follow the CSV numbers."""
import dataclasses
import os
import shutil
import tempfile

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tests.test_demo import write_tiny_fashion
from experiments.cpu_study import experiments, transferability as part
from experiments.cpu_study.report import transferability as section
from tftransfer.models.build import HEAD
from tftransfer.training import data as data_lib


def _quick_study(directory):
    """The part's quick-mode Study (one worker: this process) on tiny data."""
    data_dir = os.path.join(directory, "fashion")
    write_tiny_fashion(data_dir, per_class_train=30, per_class_test=8)
    return experiments.Study.for_part(part.NAME, os.path.join(directory, "runs"), data_dir,
                                      os.path.join(directory, "report"))


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class QuickPartTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = tempfile.mkdtemp()
        cls.study = _quick_study(cls.directory)
        cls.config = part.Config(**part.QUICK)
        cls.study.run((), [(part, cls.config)])  # writes the part's CSV files
        cls.t = experiments.load_tables(cls.study.report_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)
        super().tearDownClass()

    def test_every_table_is_filled_for_every_run(self):
        runs = self.t["transfer_runs"]
        self.assertLen(runs, 2 * self.config.seeds * len(self.config.splits))
        self.assertEqual(set(runs["method"]), {"none", "scratch"})
        for name in part.TABLES:
            self.assertFalse(self.t[name].empty, name)
            if name != "weight_map":
                keys = self.t[name][["split", "method", "seed"]].drop_duplicates()
                self.assertLen(keys, len(runs), name)

    def test_weight_map_distance_is_the_driver_logged_deviation(self):
        """``||W - W0|| / sqrt(n)`` from the saved weights and the rebuilt start equals the
        deviation the driver logged during training, for pretrained and random starts (so
        the start is rebuilt as the driver drew it)."""
        wm = self.t["weight_map"]
        finals = wm[wm["kind"] == "final"].merge(self.t["transfer_runs"],
                                                 on=["split", "method", "seed"])
        self.assertLen(finals, len(self.t["transfer_runs"]))
        self.assertAllClose(finals["distance_x"], finals["distance_y"], rtol=1e-3)
        self.assertTrue((finals["distance_x"] > 0).all())
        starts = wm[wm["kind"] == "start"]
        self.assertEqual(sorted(starts["start"]),
                         ["pretrained far"] + [f"random s{s}" for s in
                                               range(1, self.config.seeds + 1)])

    def test_head_gradient_norm_at_the_start_matches_numpy(self):
        """The recorded ``||dL/dW||`` of the new head at step 0 equals the closed form
        ``||h^T (softmax(h W + b) - Y) / B||`` on the probe batch (h: the penultimate
        features of the start model, Y one-hot labels)."""
        grads = self.t["gradient_stats"]
        job = part.runs(self.study, self.config)[("far", "scratch", 2)]
        compiled, data = part.start_model(job)
        train = data_lib.network_inputs(data.train, compiled.transfer.preprocessing,
                                        data.mean)
        x, y = part.probe_batch(train, self.config.probe_examples)
        model = compiled.model
        head = model.get_layer(HEAD)
        h = keras.Model(model.input, head.input)(x, training=False).numpy().astype(np.float64)
        w, b = (np.asarray(v.numpy(), np.float64) for v in (head.kernel, head.bias))
        p = _softmax(h @ w + b)
        p[np.arange(len(y)), y] -= 1.0
        expected = np.linalg.norm(h.T @ p / len(y))
        row = grads[(grads["split"] == "far") & (grads["method"] == "scratch")
                    & (grads["seed"] == 2) & (grads["step"] == 0)
                    & (grads["path"] == head.kernel.path)]
        self.assertLen(row, 1)
        self.assertAllClose(row["grad_norm"].iloc[0], expected, rtol=1e-4)
        self.assertEqual(int(row["size"].iloc[0]), int(np.prod(head.kernel.shape)))

    def test_recording_steps_and_step_sizes(self):
        grads, var = self.t["gradient_stats"], self.t["loss_variation"]
        steps = list(range(0, self.config.first_steps + 1, self.config.record_every))
        self.assertEqual(sorted(set(grads["step"])), steps)
        lr = 0.01  # the target runs' learning rate before its decay
        self.assertAllClose(sorted(set(var[var["step"] == 0]["eta"])),
                            [s * lr for s in self.config.step_scales])

    def test_landscape_at_the_solution_scores_the_run_accuracy(self):
        """``around_solution`` at t = 0 is the trained model on the run's test images: its
        accuracy is the driver's test accuracy."""
        land = self.t["init_landscape"]
        at = land[(land["kind"] == "around_solution") & (land["t"] == 0)].merge(
            self.t["transfer_runs"], on=["split", "method", "seed"])
        self.assertLen(at, len(self.t["transfer_runs"]))
        self.assertAllClose(at["accuracy"], at["test_accuracy"])

    def test_analyses_are_kept_beside_each_run(self):
        config = dataclasses.asdict(self.config)
        paths = list(self.study.kernel_sizes)
        for job in part.runs(self.study, self.config).values():
            self.assertTrue(os.path.exists(part.analysis_path(job, config, paths)))
        other = dict(config, probe_examples=config["probe_examples"] + 1)
        self.assertNotEqual(part.analysis_path(job, config, paths),
                            part.analysis_path(job, other, paths))

    def test_tables_are_the_part_csv_files(self):
        for name in part.TABLES:
            self.assertTrue(os.path.exists(os.path.join(self.study.part_dir, f"{name}.csv")),
                            name)

    def test_section_and_claims_read_the_tables(self):
        t = self.t
        lines, figures = section.section(t)
        self.assertIn("## Transferability (Liu et al. 2019)", lines)
        self.assertIn("transfer_weight_map.png", figures)
        claims = section.claims(t)
        self.assertLen(claims, 7)
        # One split only: the split-similarity claims are not measured.
        self.assertEqual(claims[1].verdict, "cannot tell")
        self.assertEqual(claims[6].verdict, "cannot tell")

    def test_a_claim_follows_an_edited_csv_number(self):
        """Editing weight_map.csv (the relative deviations) flips the first claim."""
        report_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
        shutil.copytree(os.path.join(self.study.report_dir, "parts"),
                        os.path.join(report_dir, "parts"))
        path = os.path.join(report_dir, "parts", part.NAME, "weight_map.csv")
        wm = pd.read_csv(path)
        finals = wm["kind"] == "final"
        verdicts = []
        for pretrained, random in ((0.01, 0.5), (0.5, 0.01)):
            wm.loc[finals, "relative"] = np.where(wm.loc[finals, "method"] == "none",
                                                  pretrained, random)
            wm.to_csv(path, index=False)
            claim = section.claims(experiments.load_tables(report_dir))[0]
            verdicts.append(claim.verdict)
            self.assertIn(f"pretrained {pretrained:.4f}", claim.numbers)
        self.assertEqual(verdicts, ["agrees", "disagrees"])


class WeightMapRowsTest(tf.test.TestCase):

    def test_distances_and_nearest_start_match_numpy(self):
        rng = np.random.default_rng(0)
        starts = {"pretrained far": rng.normal(size=50), "random s1": rng.normal(size=50),
                  "random s2": rng.normal(size=50)}
        finals = [("far", "none", 1, "pretrained far", starts["pretrained far"] + 0.01),
                  ("far", "scratch", 1, "random s1", starts["random s2"] + 0.001)]
        rows = pd.DataFrame(part.weight_map_rows(starts, finals, perplexity=1.0))
        self.assertLen(rows, 5)
        final = rows[rows["kind"] == "final"].set_index("method")
        self.assertAllClose(final.loc["none", "distance"], 0.01)  # ||0.01 * 1|| / sqrt(n)
        self.assertAllClose(final.loc["none", "relative"],
                            0.01 * np.sqrt(50) / np.linalg.norm(starts["pretrained far"]))
        gap = np.linalg.norm(starts["random s2"] + 0.001 - starts["random s1"])
        self.assertAllClose(final.loc["scratch", "distance"], gap / np.sqrt(50))
        self.assertEqual(final.loc["scratch", "nearest_start"], "random s2")
        self.assertTrue(np.isfinite(rows[["x", "y"]].to_numpy()).all())


def _fake_tables(directory, seeds=3, relative_scratch=0.5):
    """Hand-made part tables for three splits, written as CSV and read back."""
    rng = np.random.default_rng(1)
    runs, wm, grads, var, land, dev = [], [], [], [], [], []
    similarity = {"far": 0, "near": 1, "contained": 2}
    for split, level in similarity.items():
        for method in ("none", "scratch"):
            pre = method == "none"
            for seed in range(1, seeds + 1):
                ids = dict(split=split, method=method, seed=seed)
                acc = (0.7 + 0.05 * level if pre else 0.6) + rng.uniform(0, 0.01)
                distance = (0.03 - 0.01 * level if pre else 0.05) + rng.uniform(0, 1e-4)
                runs.append(dict(ids, examples_per_class=20, steps=300, test_accuracy=acc,
                                 num_test=5000, distance=distance, train_time_s=1.0))
                relative = (0.1 if pre else relative_scratch) + rng.uniform(0, 1e-3)
                wm.append(dict(ids, kind="final", start=f"s {method}", x=0.0, y=0.0,
                               distance=distance, relative=relative, nearest_start="s"))
                for step in (0, 3, 6):
                    for i, size in enumerate((100, 400, 50)):
                        scale = 1.0 if pre else 10.0 ** i
                        grads.append(dict(ids, step=step, path=f"k{i}", size=size,
                                          grad_norm=scale * (1 + step) * rng.uniform(1, 1.1)))
                    for eta in (0.01, 0.02, 0.04):
                        var.append(dict(ids, step=step, eta=eta,
                                        loss=(1 if pre else 3) * eta * (1 + 0.1 * rng.uniform())))
                for kind in ("around_start", "around_solution"):
                    curve = 1.0 if pre else 4.0
                    for t in np.linspace(-1, 1, 9):
                        land.append(dict(ids, kind=kind, t=t, loss=1 + curve * t * t
                                         + rng.uniform(0, 0.01), accuracy=0.5))
                dev.append(dict(ids, step=300, distance=distance))
    for split in similarity:
        wm.append(dict(split=split, method="none", seed=0, kind="start", start="s", x=1.0,
                       y=1.0, distance=0.0, relative=0.0, nearest_start="s"))
    tables = {"transfer_runs": runs, "weight_map": wm, "gradient_stats": grads,
              "loss_variation": var, "init_landscape": land, "transfer_deviation": dev}
    out = {}
    for name, rows in tables.items():
        path = os.path.join(directory, f"{name}.csv")
        pd.DataFrame(rows).to_csv(path, index=False, float_format="%.6g")
        out[name] = pd.read_csv(path)
    out["study"] = {"settings": {}}
    return out


class ReportTest(tf.test.TestCase):

    def test_metrics_match_numpy(self):
        t = _fake_tables(self.get_temp_dir())
        per = section.per_run(t).set_index(["split", "method", "seed"])
        key = ("near", "scratch", 2)
        land = t["init_landscape"]
        g = land[(land["split"] == "near") & (land["method"] == "scratch") & (land["seed"] == 2)
                 & (land["kind"] == "around_solution")].sort_values("t")
        tt, loss = g["t"].to_numpy(), g["loss"].to_numpy()
        centre = loss[tt == 0][0]
        ring = (np.abs(tt) <= 0.5) & (tt != 0)   # t = +-0.25, +-0.5
        self.assertEqual(int(ring.sum()), 4)
        self.assertAllClose(per.loc[key, "sharpness_solution"], np.mean(loss[ring] - centre))
        grads = t["gradient_stats"]
        g = grads[(grads["split"] == "near") & (grads["method"] == "scratch")
                  & (grads["seed"] == 2)]
        g0 = g[g["step"] == 0]
        self.assertAllClose(per.loc[key, "layer_spread"],
                            np.std(np.log10(g0["grad_norm"] / np.sqrt(g0["size"]))))
        totals = [np.sqrt(np.sum(g[g["step"] == s]["grad_norm"] ** 2)) for s in (0, 3, 6)]
        self.assertAllClose(per.loc[key, "grad_cv"], np.std(totals) / np.mean(totals))
        self.assertAllClose(per.loc[key, "grad_norm0"], totals[0])
        var = t["loss_variation"]
        v = var[(var["split"] == "near") & (var["method"] == "scratch") & (var["seed"] == 2)]
        spreads = [np.ptp(v[v["step"] == s]["loss"]) for s in (0, 3, 6)]
        self.assertAllClose(per.loc[key, "loss_variation"], np.mean(spreads))
        gains = section.gains(section.per_run(t)).set_index(["split", "seed"])
        runs = t["transfer_runs"].set_index(["split", "method", "seed"])
        self.assertAllClose(gains.loc[("far", 3), "gain"],
                            100 * (runs.loc[("far", "none", 3), "test_accuracy"]
                                   - runs.loc[("far", "scratch", 3), "test_accuracy"]))

    def test_claims_follow_the_csv_numbers(self):
        t = _fake_tables(self.get_temp_dir())
        verdicts = [c.verdict for c in section.claims(t)]
        self.assertEqual(verdicts, ["agrees"] * 7)
        self.assertTrue(all(c.paper == "papers/000-001" for c in section.claims(t)))
        # Random starts that stay closer than pretrained ones: the first claim flips.
        flipped = _fake_tables(tempfile.mkdtemp(dir=self.get_temp_dir()),
                               relative_scratch=0.01)
        self.assertEqual(section.claims(flipped)[0].verdict, "disagrees")
        # One far run of the part far from its start: the similarity claim cannot tell.
        runs = t["transfer_runs"]
        noisy = runs.index[(runs["split"] == "far") & (runs["method"] == "none")
                           & (runs["seed"] == 1)]
        t["transfer_runs"].loc[noisy, "distance"] = -1.0
        self.assertEqual(section.claims(t)[1].verdict, "cannot tell")
        self.assertIn("far", section.claims(t)[1].numbers)

    def test_section_has_a_row_per_split_and_start(self):
        t = _fake_tables(self.get_temp_dir())
        lines, figures = section.section(t)
        text = "\n".join(lines)
        per = section.per_run(t)
        sub = per[(per["split"] == "contained") & (per["method"] == "none")]
        values = 100 * sub["test_accuracy"].to_numpy()
        self.assertIn(f"{values.mean():.2f} ± {values.std(ddof=1):.2f}", text)
        self.assertIn("over 3 seeds", text)
        self.assertEqual(set(figures), {"transfer_weight_map.png", "transfer_deviation.png",
                                        "transfer_landscape_start.png",
                                        "transfer_landscape_solution.png",
                                        "transfer_gradients.png",
                                        "transfer_loss_variation.png"})

    def test_nothing_when_the_part_did_not_run(self):
        empty = {name: pd.DataFrame() for name in part.TABLES}
        empty["study"] = {"settings": {}}
        self.assertEqual(section.section(empty), ([], {}))
        self.assertEqual(section.claims(empty), [])


if __name__ == "__main__":
    tf.test.main()
