"""One segmentation run of the driver end to end, through ``python -m tftransfer.train``:
L2-SP fine-tuning of a small ResNet (a saved classification network as the source) with
an FCN head on 32x32 scenes of synthetic items; killed with SIGKILL after a checkpoint, it
resumes to the same end as an uninterrupted run (bitwise, op determinism on), evaluates
(results.json with mIoU, per-class IoU and pixel accuracy; confusion_matrix.csv) and
exports a SavedModel that is reloaded and compared."""
import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tests.train_testutil import kill_and_resume
from tftransfer.models.build import build
from tftransfer.training import segmentation_eval

STEPS = 24
WIDTHS = (4, 8, 8)


def source_weights(directory):
    """A small ResNet classifier of 10 grey classes with random weights, saved as the
    source network (--source=custom)."""
    path = os.path.join(directory, "source.weights.h5")
    keras.utils.set_random_seed(1)
    model = build("small_resnet", 10, "none", input_shape=(28, 28, 1),
                  arch_kwargs={"widths": WIDTHS}).model
    model.save_weights(path)
    return path


def flags(output_dir, weights):
    return [f"--output_dir={output_dir}", "--task=segmentation", "--dataset=scenes",
            "--scenes_source=synthetic", "--scenes_size=32", "--scenes_scale=0.5,1.0",
            "--scenes_train=32", "--scenes_test=6", "--crop_size=24",
            "--train_scale_min=0.75", "--train_scale_max=1.25", "--arch=small_resnet",
            "--model_widths=" + ",".join(map(str, WIDTHS)), "--source=custom",
            f"--weights={weights}", "--source_classes=10", "--seg_head=fcn",
            "--scheme=l2_sp", "--alpha=0.01", "--beta=0.001", "--batch_size=4",
            f"--train_steps={STEPS}", "--lr_schedule=poly", "--learning_rate=0.02",
            "--checkpoint_every=8", "--log_every=4", "--eval_batch_size=3",
            "--deterministic", "--verbose=1"]


class SegmentationEndToEndTest(tf.test.TestCase):

    def test_train_kill_resume_evaluate_export(self):
        root = tempfile.mkdtemp(prefix="tftransfer-seg-")
        weights = source_weights(root)
        whole, killed = os.path.join(root, "whole"), os.path.join(root, "killed")
        killed_at, resumed, values = kill_and_resume(
            self, lambda output_dir: flags(output_dir, weights), root, 8, STEPS)
        self.assertIn("fcn head on small_resnet from custom on scenes", resumed.stderr)
        self.assertTrue(any("seg_classifier" in k for k in values), sorted(values))

        with open(os.path.join(killed, "results.json")) as f:
            record = json.load(f)
        with open(os.path.join(whole, "results.json")) as f:
            reference = json.load(f)
        self.assertEqual((record["steps"], record["resumed_from_step"]), (STEPS, killed_at))
        self.assertEqual(record["mean_iou"], reference["mean_iou"])
        names, confusion = segmentation_eval.read_confusion_csv(
            os.path.join(killed, record["confusion_matrix_file"]))
        self.assertEqual(names, ["background"] + [f"item{c}" for c in range(10)])
        self.assertEqual(record["class_names"], names)
        self.assertEqual(int(confusion.sum()), 6 * 32 * 32)  # every test pixel, none ignored
        # mIoU, per-class IoU and pixel accuracy from the saved matrix, by the formula.
        hits = np.diag(confusion).astype(float)
        union = confusion.sum(0) + confusion.sum(1) - hits
        present = union > 0
        self.assertAllClose(record["mean_iou"], np.mean(hits[present] / union[present]))
        self.assertAllClose(record["pixel_accuracy"], hits.sum() / confusion.sum())
        for name, h, u in zip(names, hits, union):
            self.assertEqual(record["iou_per_class"][name] is None, u == 0, name)
            if u:
                self.assertAllClose(record["iou_per_class"][name], h / u)
        self.assertEqual((record["eval_split"], record["num_eval"], record["num_classes"],
                          record["seg_eval"]), ("test", 6, 11, "whole"))
        self.assertLess(record["export_max_abs_diff"], 1e-4)
        self.assertEqual(record["flags"]["task"], "segmentation")

        served = tf.saved_model.load(os.path.join(killed, "saved_model"))
        logits = served.serve(tf.zeros((2, 40, 48, 1)))  # any size: whole images
        self.assertEqual(tuple(logits.shape), (2, 40, 48, 11))


if __name__ == "__main__":
    tf.test.main()
