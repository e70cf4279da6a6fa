"""Fault tolerance: a run killed with SIGKILL after a checkpoint resumes when restarted and
ends with the same steps and bitwise the same weights as an uninterrupted run (op
determinism on). (A finished run restarted is not retrained: test_train_end_to_end.)"""
import json
import os
import signal
import subprocess
import tempfile

import tensorflow as tf

from tests.train_testutil import ROOT, driver_command, environment, run_driver, tiny_flags

STEPS = 60


def flags(output_dir):
    return tiny_flags(output_dir, source="none", scheme="l2", beta=1e-3, train_steps=STEPS,
                      lr_boundaries=[40], checkpoint_every=10, log_every=10, export=False,
                      deterministic=True, verbose=1)


def checkpoint_values(output_dir):
    reader = tf.train.load_checkpoint(os.path.join(output_dir, "checkpoints"))
    keys = [k for k in reader.get_variable_to_shape_map()
            if not k.startswith(("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"))]
    return {k: reader.get_tensor(k) for k in keys}


class ResumeAfterKillTest(tf.test.TestCase):

    def test_killed_run_resumes_to_the_same_weights(self):
        root = tempfile.mkdtemp(prefix="tftransfer-resume-")
        whole, killed = os.path.join(root, "whole"), os.path.join(root, "killed")
        uninterrupted = subprocess.Popen(driver_command(*flags(whole)), cwd=ROOT,
                                         env=environment(), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
        victim = subprocess.Popen(driver_command(*flags(killed)), cwd=ROOT, env=environment(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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

        resumed = run_driver(*flags(killed))
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn(f"resumed from step {killed_at}", resumed.stderr)
        self.assertNotIn("step 10/", resumed.stderr)
        output, _ = uninterrupted.communicate(timeout=300)
        self.assertEqual(uninterrupted.returncode, 0, output[-3000:])

        whole_values, resumed_values = checkpoint_values(whole), checkpoint_values(killed)
        self.assertEqual(sorted(whole_values), sorted(resumed_values))
        self.assertTrue(any("kernel" in k for k in whole_values))
        for key, value in whole_values.items():
            self.assertAllEqual(value, resumed_values[key], msg=key)
        with open(os.path.join(killed, "results.json")) as f:
            record = json.load(f)
        self.assertEqual((record["steps"], record["resumed_from_step"]), (STEPS, killed_at))


if __name__ == "__main__":
    tf.test.main()
