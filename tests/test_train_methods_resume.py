"""Resume of ``--method`` runs after SIGKILL (op determinism on): an optimizer method
(``spd``, whose ``W0`` is in the checkpoint) and a procedure (``lp_ft``, whose phase flag and
``theta_0`` are) resume to bitwise the same weights and records as an uninterrupted run, and
the resumed LP-FT run does not probe again."""
import json
import os
import signal
import subprocess
import tempfile

import tensorflow as tf

from tests.train_testutil import ROOT, driver_command, environment, run_driver, tiny_flags
from tests.test_train_methods import source_weights

STEPS = 60


def checkpoint_values(output_dir):
    reader = tf.train.load_checkpoint(os.path.join(output_dir, "checkpoints"))
    keys = [k for k in reader.get_variable_to_shape_map()
            if not k.startswith(("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"))]
    return {k: reader.get_tensor(k) for k in keys}


class MethodResumeAfterKillTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="tftransfer-methods-resume-")
        cls.weights = source_weights(cls.root)

    def flags(self, output_dir, method, **extra):
        return tiny_flags(output_dir, source="custom", weights=self.weights, source_classes=4,
                          method=method, train_steps=STEPS, lr_boundaries=[40],
                          checkpoint_every=10, log_every=10, export=False,
                          deterministic=True, verbose=1, **extra)

    def kill_and_resume(self, method, **extra):
        """Runs ``method`` whole and killed after its step-10 checkpoint, then resumes the
        killed one; returns (whole dir, killed dir, resumed stderr, killed-at step)."""
        whole = os.path.join(self.root, method, "whole")
        killed = os.path.join(self.root, method, "killed")
        uninterrupted = subprocess.Popen(driver_command(*self.flags(whole, method, **extra)),
                                         cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
        victim = subprocess.Popen(driver_command(*self.flags(killed, method, **extra)),
                                  cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in victim.stdout:
            seen.append(line)
            if "checkpoint: saved step 10" in line:
                victim.send_signal(signal.SIGKILL)
                break
        victim.wait(timeout=60)
        self.assertEqual(victim.returncode, -signal.SIGKILL, "".join(seen)[-3000:])
        self.assertFalse(os.path.exists(os.path.join(killed, "results.json")))
        latest = tf.train.latest_checkpoint(os.path.join(killed, "checkpoints"))
        killed_at = int(latest.rsplit("-", 1)[1])
        self.assertBetween(killed_at, 10, STEPS - 10)
        resumed = run_driver(*self.flags(killed, method, **extra))
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn(f"resumed from step {killed_at}", resumed.stderr)
        output, _ = uninterrupted.communicate(timeout=300)
        self.assertEqual(uninterrupted.returncode, 0, output[-3000:])
        return whole, killed, resumed.stderr, killed_at

    def assertSameEnd(self, whole, killed, killed_at, method):
        whole_values, resumed_values = checkpoint_values(whole), checkpoint_values(killed)
        self.assertEqual(sorted(whole_values), sorted(resumed_values))
        for key, value in whole_values.items():
            self.assertAllEqual(value, resumed_values[key], msg=key)
        records = []
        for directory in (whole, killed):
            with open(os.path.join(directory, "results.json")) as f:
                records.append(json.load(f))
        self.assertEqual((records[1]["steps"], records[1]["resumed_from_step"]),
                         (STEPS, killed_at))
        for field in ("method", "method_parameters", "accuracy", "cross_entropy"):
            self.assertEqual(records[0][field], records[1][field], field)
        self.assertEqual(records[1]["method"], method)
        return whole_values, records

    def test_spd_resumes_to_the_same_weights_with_its_w0(self):
        # --scheme=none: SPD's W0 (every trainable variable, the new head's initialisation
        # included) is its own object in the checkpoint.
        whole, killed, _, killed_at = self.kill_and_resume("spd", scheme="none")
        values, records = self.assertSameEnd(whole, killed, killed_at, "spd")
        anchors = [k for k in values if k.startswith("method_starting_point/")]
        self.assertTrue(any("predictions" in k for k in anchors), anchors[:5])
        self.assertEqual(records[1]["optimizer"], "SPDSGD")

    def test_lp_ft_resumes_after_the_probe_without_probing_again(self):
        whole, killed, stderr, killed_at = self.kill_and_resume("lp_ft", probe_epochs=20)
        self.assertIn("linear probe: done before the restored checkpoint, not run again",
                      stderr)
        self.assertNotRegex(stderr, r"linear probe: \d+ epoch")
        values, records = self.assertSameEnd(whole, killed, killed_at, "lp_ft")
        self.assertTrue(any(k.startswith("method_theta_0/") for k in values))
        self.assertEqual(records[0]["linear_probe"], records[1]["linear_probe"])
        self.assertIsNotNone(records[1]["linear_probe"])


if __name__ == "__main__":
    tf.test.main()
