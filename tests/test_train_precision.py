"""Mixed precision and XLA by flag: float16 trains with loss scaling (LossScaleOptimizer),
the XLA-compiled step runs, and the exported model still matches the trained one."""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tests.train_testutil import tiny_config
from tftransfer.training.run import run


class PrecisionTest(tf.test.TestCase):

    def tearDown(self):
        keras.mixed_precision.set_dtype_policy("float32")
        super().tearDown()

    def test_mixed_float16_with_xla(self):
        out = os.path.join(tempfile.mkdtemp(), "fp16")
        record = run(tiny_config(out, source="none", scheme="l2", beta=1e-3, train_steps=2,
                                 lr_boundaries=[1], precision="mixed_float16", xla=True,
                                 checkpoint_every=0))
        self.assertEqual(record["dtype_policy"], "mixed_float16")
        self.assertEqual(record["optimizer"], "LossScaleOptimizer")
        self.assertEqual(record["steps"], 2)
        self.assertLess(record["export_max_abs_diff"], 1e-2)  # float16 logits
        self.assertTrue(np.isfinite(float(open(os.path.join(out, "train_log.csv"))
                                          .read().splitlines()[-1].split(",")[1])))


if __name__ == "__main__":
    tf.test.main()
