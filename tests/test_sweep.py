"""tftransfer sweep: one command per grid point and seed, finished runs skipped."""
import contextlib
import io
import os
import tempfile

import tensorflow as tf

from tftransfer_cli import sweep
from tftransfer.training import results as results_lib


class SweepTest(tf.test.TestCase):

    def test_grid_times_seeds_minus_finished(self):
        root = tempfile.mkdtemp()
        base = os.path.join(root, "base.cfg")
        with open(base, "w") as f:
            f.write(f"--scheme=l2_sp\n--output_dir={root}/runs\n")
        finished = os.path.join(root, "runs", "alpha=0.1", "beta=0.01", "seed=1")
        os.makedirs(finished)
        open(os.path.join(finished, "results.json"), "w").close()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            sweep.main([f"--flagfile={base}", "--grid=alpha=0.01,0.1", "--grid=beta=0.01",
                          "--seeds=2", "--python=py"])
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertIn("3 run(s) to do, 1 already finished", err.getvalue())
        self.assertIn("0 failed before", err.getvalue())
        self.assertEqual(lines[0], f"py -m tftransfer.train --flagfile={base} --alpha=0.01 "
                         f"--beta=0.01 --seed=0 --output_dir={root}/runs/alpha=0.01/"
                         "beta=0.01/seed=0")
        self.assertFalse(any("alpha=0.1 --beta=0.01 --seed=1" in line for line in lines))

    def test_failed_runs_are_listed_again_and_reported(self):
        root = tempfile.mkdtemp()
        base = os.path.join(root, "base.cfg")
        with open(base, "w") as f:
            f.write(f"--output_dir={root}/runs\n")
        failed = os.path.join(root, "runs", "alpha=1", "seed=0")
        results_lib.write_failure(failed, {}, 21, "the loss is nan")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            sweep.main([f"--flagfile={base}", "--grid=alpha=1,2", "--python=py"])
        self.assertLen(out.getvalue().splitlines(), 2)
        self.assertIn("2 run(s) to do, 0 already finished (results.json present), 1 failed "
                      "before", err.getvalue())
        self.assertIn(f"{failed}: step 21: the loss is nan", err.getvalue())


if __name__ == "__main__":
    tf.test.main()
