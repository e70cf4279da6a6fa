"""Distribution: ``mirrored`` over two logical CPU devices gives the single-device losses on
the same global batch; ``multi_worker`` with two local workers (TF_CONFIG on loopback
ports) finishes on both. The three processes run concurrently to save time."""
import csv
import json
import os
import socket
import subprocess
import tempfile

import numpy as np
import tensorflow as tf

from tests.train_testutil import ROOT, driver_command, environment, tiny_config, tiny_flags
from tftransfer.training.run import run

# Batch norm normalises with per-replica statistics under MirroredStrategy, which differ
# from full-batch statistics; with batch norm in inference mode the two computations agree.
COMMON = dict(source="none", scheme="l2", beta=1e-3, train_steps=12, lr_boundaries=[8],
              checkpoint_every=0, freeze_batch_norm=True, export=False)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def losses(output_dir):
    with open(os.path.join(output_dir, "train_log.csv"), newline="") as f:
        return np.array([float(r["loss"]) for r in csv.DictReader(f)])


def start(flags, **env):
    return subprocess.Popen(driver_command(*flags), cwd=ROOT, env=environment(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class DistributedTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="tftransfer-dist-")
        cls.mirrored = start(tiny_flags(os.path.join(cls.root, "mirrored"), **COMMON,
                                        strategy="mirrored", cpu_logical_devices=2))
        ports = free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        multi = dict(COMMON, strategy="multi_worker", train_steps=6, lr_boundaries=[4],
                     checkpoint_every=3)
        cls.workers = [start(tiny_flags(os.path.join(cls.root, "multi"), **multi),
                             TF_CONFIG=json.dumps({"cluster": cluster,
                                                   "task": {"type": "worker", "index": i}}))
                       for i in range(2)]
        cls.single = run(tiny_config(os.path.join(cls.root, "single"), **COMMON))
        cls.outputs = {}
        for name, process in [("mirrored", cls.mirrored), ("worker0", cls.workers[0]),
                              ("worker1", cls.workers[1])]:
            cls.outputs[name] = (process.communicate(timeout=400)[0], process.returncode)

    def test_mirrored_loss_matches_single_device(self):
        output, code = self.outputs["mirrored"]
        self.assertEqual(code, 0, output[-3000:])
        with open(os.path.join(self.root, "mirrored", "results.json")) as f:
            record = json.load(f)
        self.assertEqual(record["replicas"], 2)
        self.assertEqual(self.single["replicas"], 1)
        single, mirrored = losses(os.path.join(self.root, "single")), losses(
            os.path.join(self.root, "mirrored"))
        self.assertLen(single, 12)
        self.assertAllClose(mirrored, single, rtol=2e-4, atol=2e-5)
        self.assertGreater(np.ptp(single), 1e-3)  # the losses moved: the comparison has teeth

    def test_multi_worker_both_finish(self):
        for name in ("worker0", "worker1"):
            output, code = self.outputs[name]
            self.assertEqual(code, 0, f"{name}:\n{output[-3000:]}")
        out = os.path.join(self.root, "multi")
        with open(os.path.join(out, "results.json")) as f:
            record = json.load(f)
        self.assertEqual((record["replicas"], record["steps"]), (2, 6))
        self.assertEqual(tf.train.latest_checkpoint(os.path.join(out, "checkpoints")),
                         os.path.join(out, "checkpoints", "ckpt-6"))
        self.assertFalse(os.listdir(os.path.join(out, "scratch")))


if __name__ == "__main__":
    tf.test.main()
