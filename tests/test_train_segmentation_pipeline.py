"""A segmentation run of the driver on a builder of tftransfer.data.segmentation_pipeline:
a tiny segmentation_folders tree written here (PNG images and masks with pixels of label
255), trained a few steps and evaluated on its validation split, whole images of another
size than the training crops."""
import os
import tempfile

import numpy as np
import tensorflow as tf
from PIL import Image

from tftransfer.training import config as config_lib
from tftransfer.training import run as run_lib
from tftransfer.training import segmentation_eval


def write_tree(root, rng):
    for split, count, size in (("train", 6, (20, 28)), ("validation", 2, (24, 30))):
        for kind in ("images", "masks"):
            os.makedirs(os.path.join(root, split, kind))
        for i in range(count):
            mask = np.zeros(size, np.uint8)
            mask[:, size[1] // 2:] = 1
            mask[:2] = 255  # ignored rows
            image = np.where(mask[..., None] == 1, 200, 40) + rng.integers(0, 20, size + (3,))
            Image.fromarray(image.astype(np.uint8)).save(
                os.path.join(root, split, "images", f"{i}.png"))
            Image.fromarray(mask).save(os.path.join(root, split, "masks", f"{i}.png"))
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("left\nright\n")


class SegmentationPipelineRunTest(tf.test.TestCase):

    def test_segmentation_folders_run(self):
        root = tempfile.mkdtemp(prefix="tftransfer-segfolders-")
        write_tree(os.path.join(root, "tree"), np.random.default_rng(0))
        config = config_lib.make(
            task="segmentation", dataset="segmentation_folders",
            manual_dir=os.path.join(root, "tree"), data_dir=os.path.join(root, "tfds"),
            mean="imagenet", arch="small_resnet", model_widths=[4, 8, 8], source="none",
            scheme="l2", alpha=0.0, beta=1e-3, seg_head="resnet", crop_size=16,
            batch_size=2, train_steps=4, learning_rate=0.02, lr_boundaries=[2],
            checkpoint_every=2, log_every=2, verbose=0, output_dir=os.path.join(root, "run"))
        record = run_lib.run(config)
        self.assertEqual((record["eval_split"], record["num_eval"], record["num_train"],
                          record["num_classes"], record["class_names"]),
                         ("validation", 2, 6, 2, ["left", "right"]))
        names, confusion = segmentation_eval.read_confusion_csv(
            os.path.join(root, "run", "confusion_matrix.csv"))
        self.assertEqual(int(confusion.sum()), 2 * (24 - 2) * 30)  # the 255 rows left out
        self.assertEqual(record["counted_pixels"], int(confusion.sum()))
        self.assertLess(record["export_max_abs_diff"], 1e-4)


if __name__ == "__main__":
    tf.test.main()
