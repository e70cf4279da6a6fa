"""A user dataset in class-per-folder layout, through the same interface as the others.

Layout: ``<manual_dir>/<split>/<class>/<image>`` for each split folder present among
``train``, ``validation``, ``test``; classes are the sorted union of class folder names
over the splits (label = position).
"""
import os

import tensorflow_datasets as tfds

from tftransfer.data.builders.base import (ResizeConfig, ResizedImageBuilder, config_suffix,
                                           file_reader, list_class_dirs, list_images,
                                           missing_error, require_paths)

SPLITS = ("train", "validation", "test")
INSTRUCTIONS = """
  train/<class>/<image files>        (required)
  validation/<class>/<image files>   (optional)
  test/<class>/<image files>         (optional)
  One sub-folder per class; the same class names in every split.
"""


def class_folders_config(dataset_name, resize=256, keep_aspect=False):
    """The config named like ``<dataset_name>_square256`` (one per user dataset)."""
    return ResizeConfig(name=f"{dataset_name}_{config_suffix(resize, keep_aspect)}",
                        version="1.0.0", resize=resize, keep_aspect=keep_aspect)


class ClassFolders(ResizedImageBuilder):
    """Any ``split/class/image`` directory tree, stored resized."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def _splits(self):
        require_paths(self._manual_dir, ["train"], "Class-per-folder dataset", INSTRUCTIONS)
        return [s for s in SPLITS if os.path.isdir(os.path.join(self._manual_dir, s))]

    def _class_names(self):
        names = sorted({c for s in self._splits()
                        for c in list_class_dirs(os.path.join(self._manual_dir, s))})
        if not names:
            raise missing_error("Class folders", os.path.join(self._manual_dir, "train"),
                                INSTRUCTIONS)
        return names

    def _split_generators(self, dl_manager):
        del dl_manager  # All files are local.
        label = {c: i for i, c in enumerate(self._class_names())}
        items = {}
        for split in self._splits():
            root = os.path.join(self._manual_dir, split)
            items[split] = [(f"{c}/{f}", f"{split}/{c}/{f}", label[c],
                             file_reader(os.path.join(root, c, f)))
                            for c in list_class_dirs(root)
                            for f in list_images(os.path.join(root, c))]
        return self._items_split(items)
