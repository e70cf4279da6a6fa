"""Fault tolerance: a run killed with SIGKILL after a checkpoint resumes when restarted and
ends with the same steps and bitwise the same weights as an uninterrupted run (op
determinism on). (A finished run restarted is not retrained: test_train_end_to_end.)"""
import json
import os
import tempfile

import tensorflow as tf

from tests.train_testutil import kill_and_resume, tiny_flags

STEPS = 60


def flags(output_dir):
    return tiny_flags(output_dir, source="none", scheme="l2", beta=1e-3, train_steps=STEPS,
                      lr_boundaries=[40], checkpoint_every=10, log_every=10, export=False,
                      deterministic=True, verbose=1)


class ResumeAfterKillTest(tf.test.TestCase):

    def test_killed_run_resumes_to_the_same_weights(self):
        root = tempfile.mkdtemp(prefix="tftransfer-resume-")
        killed_at, resumed, values = kill_and_resume(self, flags, root, 10, STEPS)
        self.assertNotIn("step 10/", resumed.stderr)
        self.assertTrue(any("kernel" in k for k in values))
        with open(os.path.join(root, "killed", "results.json")) as f:
            record = json.load(f)
        self.assertEqual((record["steps"], record["resumed_from_step"]), (STEPS, killed_at))


if __name__ == "__main__":
    tf.test.main()
