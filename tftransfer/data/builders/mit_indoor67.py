"""MIT Indoors 67 with the creators' official TrainImages.txt / TestImages.txt lists.

Each list line is ``<class>/<file>.jpg`` relative to ``Images/``; classes are the 67
folder names in sorted order (label = position). 80 train and 20 test images per class.
"""
import os

import tensorflow_datasets as tfds

from tftransfer.data.builders.base import (ResizeConfig, ResizedImageBuilder, config_suffix,
                                           file_reader, list_class_dirs, require_paths)

INSTRUCTIONS = """
  Images/           extracted from indoorCVPR_09.tar
                    (http://web.mit.edu/torralba/www/indoor.html): 67 class folders
                    (airport_inside/, artstudio/, ...) with their .jpg files;
  TrainImages.txt   and
  TestImages.txt    the official split lists from the same page, one
                    "<class>/<file>.jpg" per line.
"""


def mit_indoor67_config(resize=256, keep_aspect=False):
    """The config named like ``square256``."""
    return ResizeConfig(name=config_suffix(resize, keep_aspect), version="1.0.0",
                        resize=resize, keep_aspect=keep_aspect)


class MitIndoor67(ResizedImageBuilder):
    """MIT Indoors 67, official split, stored resized."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    BUILDER_CONFIGS = [mit_indoor67_config(keep_aspect=k) for k in (False, True)]

    def _class_names(self):
        require_paths(self._manual_dir, ["Images", "TrainImages.txt", "TestImages.txt"],
                      "MIT Indoors 67", INSTRUCTIONS)
        return list_class_dirs(os.path.join(self._manual_dir, "Images"))

    def _read_list(self, name):
        with open(os.path.join(self._manual_dir, name), encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]

    def _split_generators(self, dl_manager):
        del dl_manager  # All files are local.
        label = {c: i for i, c in enumerate(self._class_names())}
        images = os.path.join(self._manual_dir, "Images")
        return self._items_split({
            split: [(rel, rel, label[rel.split("/")[0]], file_reader(os.path.join(images, rel)))
                    for rel in self._read_list(list_name)]
            for split, list_name in (("train", "TrainImages.txt"), ("test", "TestImages.txt"))})
