"""The driver end to end on synthetic data and the small ResNet: l2 and l2_sp runs from a
source model the driver itself trained, the results record, the SavedModel reload, the
learning-rate boundary, the penalty value, Table 5's source evaluation, ten crops, a
finished run not retrained, and tftransfer_cli/tables.py on the records."""
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tests.train_testutil import ROOT, tiny_config
from tftransfer.models.small_resnet import small_resnet
from tftransfer.training.data import synthetic_images
from tftransfer.training.model import ModelCache
from tftransfer.training.run import run

ALPHA, BETA = 0.05, 0.02


def read_log(output_dir):
    with open(os.path.join(output_dir, "train_log.csv"), newline="") as f:
        return list(csv.DictReader(f))


def tiny_model(weights):
    model = small_resnet(input_shape=(16, 16, 3), num_classes=4, widths=(4, 8))
    model.load_weights(weights)
    return model


class DriverEndToEndTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="tftransfer-e2e-")
        cls.source_dir = os.path.join(cls.root, "source")
        run(tiny_config(cls.source_dir, source="none", scheme="none", export=False,
                        save_weights=True, log_every=0, checkpoint_every=0))
        cls.weights = os.path.join(cls.source_dir, "model.weights.h5")
        cls.records = {}
        cache = ModelCache()  # seed 1 reuses seed 0's compiled model
        for scheme in ("l2", "l2_sp"):
            for seed in (0, 1):
                cls.records[scheme, seed] = run(cls.target_config(scheme, seed), cache=cache)

    @classmethod
    def target_config(cls, scheme, seed, output_dir=None):
        return tiny_config(output_dir or os.path.join(cls.root, "table2", f"{scheme}_seed{seed}"),
                           source="custom", weights=cls.weights, source_classes=4,
                           scheme=scheme, alpha=ALPHA, beta=BETA, seed=seed, split_seed=1,
                           save_weights=True, eval_crops=10 if scheme == "l2_sp" else 1,
                           source_eval_dataset="synthetic", export=seed == 0)

    def out(self, scheme, seed=0):
        return os.path.join(self.root, "table2", f"{scheme}_seed{seed}")

    def test_results_record(self):
        for (scheme, seed), record in self.records.items():
            with open(os.path.join(self.out(scheme, seed), "results.json")) as f:
                on_disk = json.load(f)
            self.assertEqual(on_disk["flags"]["scheme"], scheme)
            self.assertEqual(on_disk["flags"]["seed"], seed)
            self.assertEqual(on_disk["flags"]["alpha"], ALPHA)
            self.assertEqual(on_disk["steps"], 30)
            self.assertRegex(on_disk["git_commit"], r"^[0-9a-f]{40}$")
            self.assertBetween(on_disk["accuracy"], 0.0, 1.0)
            self.assertEqual(on_disk["num_eval"], 4 * 8)
            self.assertGreater(on_disk["images_per_s"], 0)
            self.assertGreater(on_disk["wall_time_s"], on_disk["train_time_s"])
            self.assertEqual(on_disk["eval_crops"], 10 if scheme == "l2_sp" else 1)
            self.assertAlmostEqual(on_disk["source_drop"], 100 * (
                on_disk["source_accuracy_before"] - on_disk["source_accuracy_after"]))

    def test_saved_model_reload_matches_the_trained_weights(self):
        out = self.out("l2_sp")
        reloaded = tf.saved_model.load(os.path.join(out, "saved_model"))
        model = tiny_model(os.path.join(out, "model.weights.h5"))
        images, _ = synthetic_images(4, 3, 16, seed=5)
        x = tf.constant(images, tf.float32) / 255.0  # the small ResNet's "unit" input
        self.assertAllClose(reloaded.serve(x), model(x, training=False), atol=1e-5)
        self.assertLess(self.records["l2_sp", 0]["export_max_abs_diff"], 1e-5)

    def test_learning_rate_changes_at_the_boundary(self):
        rows = read_log(self.out("l2"))
        rate = {int(r["step"]): float(r["learning_rate"]) for r in rows}
        self.assertEqual(sorted(rate), list(range(1, 31)))
        for step in range(1, 21):
            self.assertAlmostEqual(rate[step], 0.05, places=6)
        for step in range(21, 31):
            self.assertAlmostEqual(rate[step], 0.005, places=7)

    def test_logged_penalty_equals_numpy_formula_on_final_weights(self):
        source = tiny_model(self.weights)
        for scheme in ("l2", "l2_sp"):
            final = tiny_model(os.path.join(self.out(scheme), "model.weights.h5"))
            expected = 0.0
            for layer, start in zip(final.layers, source.layers):
                if not hasattr(layer, "kernel"):
                    continue
                w = layer.kernel.numpy().astype(np.float64)
                if layer.name == "predictions":
                    expected += BETA / 2 * np.sum(w ** 2)
                else:
                    w0 = start.kernel.numpy() if scheme == "l2_sp" else 0.0
                    expected += ALPHA / 2 * np.sum((w - w0) ** 2)
            logged = float(read_log(self.out(scheme))[-1]["penalty"])
            self.assertAllClose(logged, expected, rtol=1e-5)

    def test_deviation_scalars_grow_from_zero(self):
        rows = read_log(self.out("l2_sp"))
        columns = [c for c in rows[0] if c.startswith("deviation:")]
        self.assertLen(columns, 3)
        self.assertTrue(os.listdir(os.path.join(self.out("l2_sp"), "tensorboard")))
        for column in columns:
            self.assertGreater(float(rows[-1][column]), 0.0)

    def test_reused_compiled_model_trains_like_a_fresh_one(self):
        fresh_dir = os.path.join(self.root, "fresh_l2_seed1")
        fresh = run(self.target_config("l2", 1, fresh_dir))
        self.assertEqual(fresh["accuracy"], self.records["l2", 1]["accuracy"])
        a, b = (tiny_model(os.path.join(d, "model.weights.h5"))
                for d in (fresh_dir, self.out("l2", 1)))
        for x, y in zip(a.get_weights(), b.get_weights()):
            self.assertAllClose(x, y, rtol=1e-5, atol=1e-6)
        self.assertNotAllClose(a.get_weights()[0], tiny_model(os.path.join(
            self.out("l2", 0), "model.weights.h5")).get_weights()[0])

    def test_finished_run_is_not_retrained(self):
        out = self.out("l2")
        before = os.path.getmtime(os.path.join(out, "results.json"))
        record = run(self.target_config("l2", 0))
        self.assertEqual(record["finished_at"], self.records["l2", 0]["finished_at"])
        self.assertEqual(os.path.getmtime(os.path.join(out, "results.json")), before)

    def test_make_tables_prints_both_tables_from_these_records(self):
        result = subprocess.run(
            [sys.executable, "-m", "tftransfer_cli.tables",
             os.path.join(self.root, "table2")],
            capture_output=True, text=True, cwd=ROOT, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("Table 2", result.stdout)
        self.assertIn("Table 5", result.stdout)
        l2 = 100 * np.array([self.records["l2", s]["accuracy"] for s in (0, 1)])
        self.assertIn(f"{l2.mean():.1f}+-{l2.std(ddof=1):.1f}", result.stdout)


if __name__ == "__main__":
    tf.test.main()
