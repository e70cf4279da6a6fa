"""Segmentation under --strategy=mirrored (two logical CPU devices, batch norm synchronised
by default): the per-step losses (and the mIoU) equal those of one device, so the
per-pixel loss is averaged over the replicas like the penalty (Keras divides a loss by the
replicas only through its batch reduction) and the batch statistics are the global batch's.
The resnet head (no dropout) keeps the two runs' draws identical. The mirrored run is a
driver process (the CPU is split before TensorFlow starts); the one-device run, the same
flags' driver run in this process meanwhile (one TensorFlow import less)."""
import csv
import json
import os
import subprocess
import tempfile

import numpy as np
import tensorflow as tf
from absl import flags as absl_flags

from tests.train_testutil import ROOT, driver_command, environment
from tftransfer.training import flags as flags_lib
from tftransfer.training.run import run


def flags(output_dir, *extra):
    return [f"--output_dir={output_dir}", "--task=segmentation", "--dataset=scenes",
            "--scenes_source=synthetic", "--scenes_size=32", "--scenes_scale=0.5,1.0",
            "--scenes_train=16", "--scenes_test=4", "--crop_size=24", "--arch=small_resnet",
            "--model_widths=4,8,8", "--source=none", "--scheme=l2", "--alpha=0",
            "--beta=1e-3", "--seg_head=resnet", "--batch_size=4", "--train_steps=4",
            "--lr_boundaries=3", "--checkpoint_every=0", "--log_every=1", "--noexport",
            "--eval_batch_size=2", "--verbose=1", *extra]


def config_of(argv):
    """The driver's configuration of the command-line flags ``argv``."""
    values = absl_flags.FlagValues()
    flags_lib.define_flags(values)
    values(["train", *argv])
    return flags_lib.config_from_flags(values)


def losses(output_dir):
    with open(os.path.join(output_dir, "train_log.csv"), newline="") as f:
        return np.array([float(row["loss"]) for row in csv.DictReader(f)])


class MirroredSegmentationTest(tf.test.TestCase):

    def test_two_replicas_train_like_one(self):
        root = tempfile.mkdtemp(prefix="tftransfer-seg-mirrored-")
        one, two = os.path.join(root, "one"), os.path.join(root, "two")
        second = subprocess.Popen(
            driver_command(*flags(two, "--strategy=mirrored", "--cpu_logical_devices=2")),
            cwd=ROOT, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        try:
            first = run(config_of(flags(one)))
        finally:
            output = second.communicate(timeout=300)[0]
        self.assertEqual(second.returncode, 0, output[-3000:])
        self.assertEqual(first["replicas"], 1)
        with open(os.path.join(two, "results.json")) as f:
            record = json.load(f)
        self.assertEqual(record["replicas"], 2)
        self.assertLen(losses(one), 4)
        self.assertAllClose(losses(two), losses(one), rtol=1e-4)
        with open(os.path.join(one, "results.json")) as f:
            self.assertAllClose(record["mean_iou"], json.load(f)["mean_iou"], atol=1e-3)


if __name__ == "__main__":
    tf.test.main()
