"""Resume of ``--method`` runs after SIGKILL (op determinism on): an optimizer method
(``spd``, whose ``W0`` is in the checkpoint) and a procedure (``lp_ft``, whose phase flag and
``theta_0`` are) resume to bitwise the same weights and records as an uninterrupted run, and
the resumed LP-FT run does not probe again."""
import json
import os
import tempfile

import tensorflow as tf

from tests.train_testutil import kill_and_resume, tiny_flags
from tests.test_train_methods import source_weights

STEPS = 60


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

    def resume_and_compare(self, method, **extra):
        """``kill_and_resume`` of ``method`` (killed after its step-10 checkpoint); returns
        (final checkpoint values, [whole record, resumed record], resumed stderr) after
        checking that the records agree."""
        root = os.path.join(self.root, method)
        killed_at, resumed, values = kill_and_resume(
            self, lambda output_dir: self.flags(output_dir, method, **extra), root, 10, STEPS)
        records = []
        for name in ("whole", "killed"):
            with open(os.path.join(root, name, "results.json")) as f:
                records.append(json.load(f))
        self.assertEqual((records[1]["steps"], records[1]["resumed_from_step"]),
                         (STEPS, killed_at))
        for field in ("method", "method_parameters", "accuracy", "cross_entropy"):
            self.assertEqual(records[0][field], records[1][field], field)
        self.assertEqual(records[1]["method"], method)
        return values, records, resumed.stderr

    def test_spd_resumes_to_the_same_weights_with_its_w0(self):
        # --scheme=none: SPD's W0 (every trainable variable, the new head's initialisation
        # included) is its own object in the checkpoint.
        values, records, _ = self.resume_and_compare("spd", scheme="none")
        anchors = [k for k in values if k.startswith("method_starting_point/")]
        self.assertTrue(any("predictions" in k for k in anchors), anchors[:5])
        self.assertEqual(records[1]["optimizer"], "SPDSGD")

    def test_lp_ft_resumes_after_the_probe_without_probing_again(self):
        values, records, stderr = self.resume_and_compare("lp_ft", probe_epochs=20)
        self.assertIn("linear probe: done before the restored checkpoint, not run again",
                      stderr)
        self.assertNotRegex(stderr, r"linear probe: \d+ epoch")
        self.assertTrue(any(k.startswith("method_theta_0/") for k in values))
        self.assertEqual(records[0]["linear_probe"], records[1]["linear_probe"])
        self.assertIsNotNone(records[1]["linear_probe"])


if __name__ == "__main__":
    tf.test.main()
