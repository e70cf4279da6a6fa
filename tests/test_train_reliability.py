"""A run's directory is never mixed up: identity checked on restart, divergence recorded as
a failure, damaged checkpoints and records named, one process per directory, umask kept.

Every case is a defect of an earlier version (each test fails there)."""
import glob
import json
import os
import stat
import subprocess
import tempfile

import numpy as np
import tensorflow as tf

from tests.train_testutil import ROOT, driver_command, environment, run_driver, tiny_config, tiny_flags
from tftransfer.io_utils import atomic_write_json
from tftransfer.training import callbacks
from tftransfer.training import config as config_lib
from tftransfer.training import identity
from tftransfer.training import run_directory
from tftransfer.training.run import run

BASE = dict(source="none", scheme="l2", beta=1e-3, export=False, log_every=5,
            checkpoint_every=10)


def _config(output_dir, **overrides):
    return tiny_config(output_dir, **dict(BASE, **overrides))


def _checkpoint_steps(output_dir):
    return sorted(int(p.rsplit("-", 1)[1].split(".")[0])
                  for p in glob.glob(os.path.join(output_dir, "checkpoints", "ckpt-*.index")))


class FinishedThenInterruptedTest(tf.test.TestCase):
    """One trained run (30 steps, checkpoints at 20 and 30 kept), made 'interrupted' by
    removing its results.json, then restarted in various ways."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="tftransfer-reliability-")
        run(_config(self.dir))
        os.remove(os.path.join(self.dir, "results.json"))

    def test_restart_with_other_flags_stops_and_names_them(self):
        for changed in ({"seed": 1}, {"beta": 1e-2}, {"train_steps": 20,
                                                       "lr_boundaries": [10]}):
            with self.assertRaisesRegex(identity.RunMismatchError,
                                        f"--{next(iter(changed))}: .* there, .* now"):
                run(_config(self.dir, **changed))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "results.json")))

    def test_restart_with_only_logging_flags_changed_resumes(self):
        record = run(_config(self.dir, log_every=0, checkpoint_every=0, verbose=1))
        self.assertEqual((record["steps"], record["resumed_from_step"]), (30, 30))

    def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(self):
        self.assertEqual(_checkpoint_steps(self.dir), [20, 30])
        data = glob.glob(os.path.join(self.dir, "checkpoints", "ckpt-30.data-*"))[0]
        with open(data, "r+b") as f:
            f.truncate(16)
        with self.assertLogs(level="WARNING") as logs:
            record = run(_config(self.dir))
        self.assertIn("ckpt-30 is damaged", "\n".join(logs.output))
        self.assertEqual((record["steps"], record["resumed_from_step"]), (30, 20))

    def test_garbage_state_file_is_an_error_not_a_restart(self):
        with open(os.path.join(self.dir, "checkpoints", "checkpoint"), "w") as f:
            f.write("garbage ][ {")
        with self.assertRaisesRegex(config_lib.ConfigError, "checkpoint is unreadable.*"
                                    "ckpt-30, ckpt-20"):
            run(_config(self.dir))

    def test_damaged_results_file_is_named(self):
        open(os.path.join(self.dir, "results.json"), "w").close()
        with self.assertRaisesRegex(config_lib.ConfigError,
                                    f"{self.dir}/results.json is damaged"):
            run(_config(self.dir))

    def test_checkpoints_without_identity_are_refused(self):
        os.remove(identity.path(self.dir))
        with self.assertRaisesRegex(identity.RunMismatchError, "without identity.json"):
            run(_config(self.dir))


class DivergenceTest(tf.test.TestCase):

    def test_divergence_keeps_the_last_good_checkpoint_and_records_a_failure(self):
        output_dir = tempfile.mkdtemp(prefix="tftransfer-diverge-")
        # Learning rate 0.05 for 20 steps (checkpoints at 10 and 20), then 5e28.
        config = _config(output_dir, lr_decay_factor=1e30, log_every=1)
        with self.assertRaises(callbacks.Diverged) as caught:
            run(config)
        self.assertGreater(caught.exception.step, 20)
        self.assertFalse(os.path.exists(os.path.join(output_dir, "results.json")))
        with open(os.path.join(output_dir, "failed.json")) as f:
            failure = json.load(f)
        self.assertEqual(failure["failed_at_step"], caught.exception.step)
        self.assertEqual(_checkpoint_steps(output_dir), [10, 20])
        reader = tf.train.load_checkpoint(os.path.join(output_dir, "checkpoints"))
        for key in reader.get_variable_to_shape_map():
            value = reader.get_tensor(key)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                self.assertTrue(np.all(np.isfinite(value)), key)

        # The driver exits 3 and a restart retries (from step 20), failing again.
        result = run_driver(*tiny_flags(output_dir, **dict(BASE, lr_decay_factor=1e30,
                                                           log_every=1, verbose=1)))
        self.assertEqual(result.returncode, 3, result.stderr[-2000:])
        self.assertIn("resumed from step 20", result.stderr)
        self.assertIn("training diverged at step", result.stderr)


class OutputDirectoryTest(tf.test.TestCase):

    def test_two_runs_into_one_directory_the_second_stops_at_once(self):
        """The first run is a driver process; the second, the same flags' driver run in this
        process (the lock is another process's either way), stops with the RunDirectoryError
        that the driver's command line turns into exit status 2 (a ConfigError: the exit
        status itself is tests/test_train_input_problems.py's)."""
        output_dir = tempfile.mkdtemp(prefix="tftransfer-lock-")
        values = dict(BASE, train_steps=400, lr_boundaries=[300], log_every=1, verbose=1)
        first = subprocess.Popen(driver_command(*tiny_flags(output_dir, **values)), cwd=ROOT,
                                 env=environment(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        try:
            for line in first.stdout:
                if "step 1/" in line:
                    break
            self.assertIsNone(first.poll(), "the first run ended before the second started")
            with self.assertRaisesRegex(run_directory.RunDirectoryError,
                                        rf"in use by another run \(process {first.pid}\)"):
                run(tiny_config(output_dir, **values))
            self.assertTrue(issubclass(run_directory.RunDirectoryError, config_lib.ConfigError))
            self.assertIsNone(first.poll())
        finally:
            first.kill()
            first.wait()

    def test_unusable_output_directories_are_named(self):
        root = tempfile.mkdtemp()
        a_file = os.path.join(root, "file")
        open(a_file, "w").close()
        with self.assertRaisesRegex(run_directory.RunDirectoryError, "is a file"):
            run(_config(a_file))
        with self.assertRaisesRegex(run_directory.RunDirectoryError, "cannot be created"):
            run(_config(os.path.join(a_file, "under")))

    def test_lock_is_held_for_the_run_only(self):
        output_dir = tempfile.mkdtemp()
        with run_directory.claim(output_dir):
            with self.assertRaisesRegex(run_directory.RunDirectoryError, "in use"):
                with run_directory.claim(output_dir):
                    pass
        with run_directory.claim(output_dir):
            pass

    def test_default_output_dir_is_one_per_identity(self):
        a = config_lib.make(dataset="synthetic")
        self.assertIsNone(a.runtime.output_dir)
        same = config_lib.make(dataset="synthetic", verbose=0, log_every=7)
        other = config_lib.make(dataset="synthetic", seed=1)
        self.assertEqual(identity.default_output_dir(a), identity.default_output_dir(same))
        self.assertNotEqual(identity.default_output_dir(a), identity.default_output_dir(other))
        self.assertStartsWith(identity.default_output_dir(a), os.path.join("runs", "synthetic-"))

    def test_written_files_honour_the_umask(self):
        path = os.path.join(tempfile.mkdtemp(), "record.json")
        for mask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
            old = os.umask(mask)
            try:
                atomic_write_json(path, {"a": 1})
            finally:
                os.umask(old)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), mode)


if __name__ == "__main__":
    tf.test.main()
