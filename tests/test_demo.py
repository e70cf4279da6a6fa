"""The demo end to end on a tiny fake Fashion-MNIST: table printed, results written, cache
reused. Runs in-process (the demo's runs are driver runs, and its flags its own)."""
import contextlib
import io
import json
import os

import numpy as np
import tensorflow as tf
from absl import flags

from tests.test_idx import write_idx
from experiments import demo


def write_tiny_fashion(directory, per_class_train=12, per_class_test=4):
    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    for prefix, per_class in (("train", per_class_train), ("t10k", per_class_test)):
        labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
        # Each class gets its own mean brightness, so the task is learnable.
        images = np.clip(rng.normal(25 * labels[:, None, None], 20, (len(labels), 28, 28)),
                         0, 255).astype(np.uint8)
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)


class DemoTest(tf.test.TestCase):

    def run_demo(self, data_dir, output_dir, *extra):
        argv = ["demo", f"--data_dir={data_dir}", f"--output_dir={output_dir}",
                "--examples_per_class=8", "--seeds=2", "--alpha_grid=0.01",
                "--finetune_steps=4", "--batch_size=8", "--pretrain_epochs=1",
                "--threads=0", *extra]  # TensorFlow may have started in this process
        flags.FLAGS.unparse_flags()
        flags.FLAGS(argv)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertLogs("absl", "INFO") as logs:
            demo.main(argv)
        return out.getvalue() + "\n".join(logs.output)

    def test_demo_prints_the_table_and_reuses_the_source_model(self):
        data_dir = os.path.join(self.get_temp_dir(), "fashion")
        output_dir = os.path.join(self.get_temp_dir(), "out")
        write_tiny_fashion(data_dir)
        stdout = self.run_demo(data_dir, output_dir)
        self.assertIn("pretraining on 60 images", stdout)
        for method in ("scratch", "none", "l2", "l2_sp"):
            self.assertRegex(stdout,
                             rf"\| {method} \| [^|]+ \| [^|]+ \| \d+\.\d\d \+- \d+\.\d\d \|")
        with open(os.path.join(output_dir, "results.json")) as f:
            results = json.load(f)
        self.assertLen(results["runs"], 8)
        self.assertEqual([(r["method"], r["alpha"]) for r in results["selection"]],
                         [("l2", 0.01), ("l2_sp", 0.01)])
        # Every run is a driver run with its own record; the test set is classes 5-9.
        record_path = os.path.join(output_dir, "final", "l2_sp_alpha0.01", "seed1",
                                   "results.json")
        with open(record_path) as f:
            record = json.load(f)
        self.assertEqual((record["num_eval"], record["flags"]["classes"]), (20, [5, 6, 7, 8, 9]))
        self.assertEqual(record["flags"]["scheme"], "l2_sp")
        rerun = self.run_demo(data_dir, output_dir, "--methods=none", "--seeds=1")
        self.assertIn("loading cached weights", rerun)
        self.assertNotIn("pretraining", rerun)


if __name__ == "__main__":
    tf.test.main()
