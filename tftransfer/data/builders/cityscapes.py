"""Cityscapes fine annotations with the 19 training classes (Li et al. 2018, Table 4).

tfds name ``cityscapes_train_ids`` (pipeline name ``cityscapes``), splits ``train``
(2975 images) and ``validation`` (500; the test split's labels are not public). Each
``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` is paired with
``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png``; its label ids (0..33)
become train ids by the table ``resources/cityscapes_labels.tsv`` (written from the
official label definition): road 7 -> 0, sidewalk 8 -> 1, building 11 -> 2, wall 12 -> 3,
fence 13 -> 4, pole 17 -> 5, traffic light 19 -> 6, traffic sign 20 -> 7, vegetation
21 -> 8, terrain 22 -> 9, sky 23 -> 10, person 24 -> 11, rider 25 -> 12, car 26 -> 13, truck
27 -> 14, bus 28 -> 15, train 31 -> 16, motorcycle 32 -> 17, bicycle 33 -> 18; every other
value -> 255 (ignored). Images are stored as their own PNG bytes at 1024x2048.

The two official archives are read in place (``zipfile``, nothing extracted), or their
extracted folders are read when the archives are absent. Not tfds' own ``cityscapes``
builder: that one stores the raw label ids (the mapping would run at every read), takes
only the archives (extracted into the download directory, another 11 GB), and fixes the
image shape to 1024x2048, so a dummy-data test needs full-size files.
"""
import os
import zipfile

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.builders.base import file_reader, resource_path
from tftransfer.data.builders.segmentation_folders import (IGNORE_LABEL, MaskedImageBuilder,
                                                           Pair, manual_dir, missing_error,
                                                           read_label_png)

LABELS_FILE = "cityscapes_labels.tsv"
IMAGES_ZIP, LABELS_ZIP = "leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip"
IMAGES_DIR, LABELS_DIR = "leftImg8bit", "gtFine"
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"
SPLITS = {"train": "train", "validation": "val"}  # tfds split -> Cityscapes folder
OFFICIAL_COUNTS = {"train": 2975, "validation": 500}
INSTRUCTIONS = f"""
  {IMAGES_ZIP}   and
  {LABELS_ZIP}        from https://www.cityscapes-dataset.com/downloads/
                                 (free registration; packages 3 and 1), as downloaded;
  or their extracted folders instead: {IMAGES_DIR}/{{train,val}}/<city>/*{IMAGE_SUFFIX}
  and {LABELS_DIR}/{{train,val}}/<city>/*{LABEL_SUFFIX}.
"""


def label_table():
    """``[(label id, name, train id), ...]`` of the shipped table, by label id."""
    with open(resource_path(LABELS_FILE), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f
                if line.strip() and not line.startswith("#")]
    return [(int(label_id), name, int(train_id)) for label_id, name, train_id in rows]


def train_id_lookup():
    """uint8 ``[256]``: train id of each label id value (255 for values not in the table)."""
    lookup = np.full(256, IGNORE_LABEL, np.uint8)
    for label_id, _, train_id in label_table():
        lookup[label_id] = train_id
    return lookup


def class_names():
    """The 19 training classes, by train id."""
    named = {train_id: name for _, name, train_id in label_table() if train_id != IGNORE_LABEL}
    return [named[i] for i in range(len(named))]


class FolderSource:
    """Files under a directory, by path relative to it (``/``-separated)."""

    def __init__(self, root):
        self.root = root
        self.where = root

    def files(self, prefix):
        top = os.path.join(self.root, prefix)
        return sorted(os.path.relpath(os.path.join(d, f), self.root).replace(os.sep, "/")
                      for d, _, names in os.walk(top) for f in names)

    def reader(self, rel):
        return file_reader(os.path.join(self.root, rel))


class ZipSource:
    """Members of a zip archive, read in place (one shared handle; ``zipfile`` locks it)."""

    def __init__(self, path):
        self.zip = zipfile.ZipFile(path)
        self.where = path

    def files(self, prefix):
        return sorted(n for n in self.zip.namelist()
                      if n.startswith(prefix + "/") and not n.endswith("/"))

    def reader(self, rel):
        return lambda: self.zip.read(rel)


def open_source(root, archive, folder):
    """The archive ``root/archive`` if present, else the folder ``root/folder``, else a
    ``FileNotFoundError`` naming both."""
    if os.path.isfile(os.path.join(root, archive)):
        return ZipSource(os.path.join(root, archive))
    if os.path.isdir(os.path.join(root, folder)):
        return FolderSource(root)
    raise missing_error(f"Cityscapes ({archive} or {folder}/)", root, INSTRUCTIONS)


class CityscapesTrainIds(MaskedImageBuilder):
    """Cityscapes gtFine, label ids mapped to the 19 train ids (module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def class_names(self):
        return class_names()

    def _split_generators(self, dl_manager):
        root = manual_dir(dl_manager, "Cityscapes", INSTRUCTIONS)
        images = open_source(root, IMAGES_ZIP, IMAGES_DIR)
        labels = open_source(root, LABELS_ZIP, LABELS_DIR)
        lookup = train_id_lookup()
        return self._pairs_split({split: self._pairs(images, labels, folder, lookup, split)
                                  for split, folder in SPLITS.items()})

    @staticmethod
    def _pairs(images, labels, folder, lookup, split):
        """The ``Pair`` of every image of ``folder`` (train / val); raises ``ValueError``
        naming the images without a label file."""
        image_files = [f for f in images.files(f"{IMAGES_DIR}/{folder}")
                       if f.endswith(IMAGE_SUFFIX)]
        label_files = set(labels.files(f"{LABELS_DIR}/{folder}"))
        if not image_files:
            raise missing_error(f"Cityscapes {IMAGES_DIR}/{folder}/ images", images.where,
                                INSTRUCTIONS)
        pairs, unlabelled = [], []
        for rel in image_files:
            label = (LABELS_DIR + rel[len(IMAGES_DIR):-len(IMAGE_SUFFIX)] + LABEL_SUFFIX)
            if label not in label_files:
                unlabelled.append(f"{rel}: no {label}")
                continue
            read = labels.reader(label)
            pairs.append(Pair(
                key=os.path.basename(rel)[:-len(IMAGE_SUFFIX)], image_name=rel, mask_name=label,
                read_image=images.reader(rel),
                read_mask=lambda read=read, label=label: lookup[read_label_png(read(), label)]))
        if unlabelled:
            raise ValueError(f"Cityscapes: {len(unlabelled)} image(s) without their label "
                             f"file in {labels.where}, e.g.\n  " + "\n  ".join(unlabelled[:10])
                             + f"\nUse the complete {LABELS_ZIP}.")
        if len(pairs) != OFFICIAL_COUNTS[split]:
            logging.warning("[cityscapes] split %s: %d images (the official set has %d).",
                            split, len(pairs), OFFICIAL_COUNTS[split])
        return pairs
