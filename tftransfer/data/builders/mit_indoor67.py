"""MIT Indoors 67 with the official split lists (Li et al. 2018, Section 4.1).

Labels are the positions in the official list of the 67 classes
(``resources/mit_indoor67_classes.txt``, the sorted folder names of ``Images/``).
"""
import os

import tensorflow_datasets as tfds

from tftransfer.data.builders.base import (ResizeConfig, ResizedImageBuilder,
                                           check_class_folders, config_arg, config_suffix,
                                           file_reader, manual_dir, resource_path)

INSTRUCTIONS = """
  Images/           extracted from indoorCVPR_09.tar
                    (http://web.mit.edu/torralba/www/indoor.html): 67 class folders
                    (airport_inside/, artstudio/, ...) with their .jpg files;
  TrainImages.txt   and
  TestImages.txt    the official split lists from the same page, one
                    "<class>/<file>.jpg" per line.
"""
CLASSES_FILE = "mit_indoor67_classes.txt"
SPLIT_LISTS = (("train", "TrainImages.txt"), ("test", "TestImages.txt"))
MANUAL_PATHS = ("Images",) + tuple(name for _, name in SPLIT_LISTS)  # the manual files


def mit_indoor67_config(resize=256, keep_aspect=False):
    """The config named like ``square256``."""
    return ResizeConfig(name=config_suffix(resize, keep_aspect), version="1.0.0",
                        resize=resize, keep_aspect=keep_aspect)


def read_list(path):
    """The non-empty lines of a split list, stripped."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


class MitIndoor67(ResizedImageBuilder):
    """MIT Indoors 67, official split, stored resized."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    BUILDER_CONFIGS = [mit_indoor67_config(keep_aspect=k) for k in (False, True)]

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, resize, keep_aspect):
        del data_dir, manual_dir  # The manual directory is given when preparing.
        return {"config": config_arg(cls, mit_indoor67_config(resize, keep_aspect))}

    def _class_label(self):
        return tfds.features.ClassLabel(names_file=resource_path(CLASSES_FILE))

    def _split_generators(self, dl_manager):
        root = manual_dir(dl_manager, "MIT Indoors 67", INSTRUCTIONS, MANUAL_PATHS)
        images = os.path.join(root, "Images")
        check_class_folders(images, self.info.features["label"].names, "MIT Indoors 67",
                            f"resources/{CLASSES_FILE}")
        label = self.info.features["label"].str2int
        return self._items_split({
            split: [(rel, rel, label(rel.split("/")[0]), file_reader(os.path.join(images, rel)))
                    for rel in read_list(os.path.join(root, list_name))]
            for split, list_name in SPLIT_LISTS})
