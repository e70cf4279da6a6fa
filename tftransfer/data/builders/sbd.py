"""Pascal VOC 2012 segmentation with the SBD annotations (Li et al. 2018, Table 4, SBD row).

tfds name ``sbd_voc_aug`` (pipeline name ``sbd``), 21 classes (background + the 20 VOC
classes), 255 = ignored (VOC's object boundaries). Splits:

- ``train`` (train_aug): the names of SBD ``train.txt`` and ``val.txt`` and VOC 2012
  ``ImageSets/Segmentation/train.txt``, minus those of VOC's ``val.txt``, sorted (10582 on
  the real files);
- ``validation``: VOC 2012 ``ImageSets/Segmentation/val.txt`` (1449).

A name with a VOC annotation (``SegmentationClass/<name>.png``, a palette PNG whose
indices are the labels) takes it and its image from ``JPEGImages/``; the others take SBD's
``cls/<name>.mat`` (MATLAB v5 struct ``GTcls``, field ``Segmentation``, read with
``scipy.io.loadmat``) and its image from SBD's ``img/``. JPEGs are stored as their own bytes.

Files: ``benchmark.tgz`` (SBD, holding ``benchmark_RELEASE/dataset/``) and
``VOCtrainval_11-May-2012.tar`` (holding ``VOCdevkit/VOC2012/``) in the manual directory,
extracted by tfds' download manager into ``<data_dir>/downloads/extracted`` (tar files have
no random access), or their extracted folders ``benchmark_RELEASE/`` and ``VOCdevkit/``
in the manual directory, read in place.
"""
import io
import os

import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.builders.base import file_reader
from tftransfer.data.builders.segmentation_folders import (MaskedImageBuilder, Pair, manual_dir,
                                                           missing_error, read_label_png)

SBD_ARCHIVE, VOC_ARCHIVE = "benchmark.tgz", "VOCtrainval_11-May-2012.tar"
SBD_DIR, VOC_DIR = "benchmark_RELEASE/dataset", "VOCdevkit/VOC2012"
CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
OFFICIAL_COUNTS = {"train": 10582, "validation": 1449}
SBD_FILES = ("img", "cls", "train.txt", "val.txt")
VOC_FILES = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation/train.txt",
             "ImageSets/Segmentation/val.txt")
INSTRUCTIONS = f"""
  {SBD_ARCHIVE}                   SBD, from
      http://home.bharathh.info/pubs/codes/SBD/download.html (benchmark_RELEASE/dataset/
      img/*.jpg, cls/*.mat, train.txt, val.txt inside);
  {VOC_ARCHIVE}   Pascal VOC 2012, from
      http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (VOCdevkit/VOC2012/JPEGImages,
      SegmentationClass, ImageSets/Segmentation/{{train,val}}.txt inside);
  or instead of each archive its extracted folder: benchmark_RELEASE/ and VOCdevkit/.
"""


def read_names(path):
    """The non-empty, stripped lines of a split list."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_sbd_mat(data, name):
    """uint8 ``[H, W]`` labels of an SBD ``cls/*.mat`` file's bytes (``GTcls.Segmentation``)."""
    from scipy.io import loadmat  # Lazy: only SBD needs SciPy.

    try:
        mat = loadmat(io.BytesIO(data), squeeze_me=True, struct_as_record=False)
        segmentation = mat["GTcls"].Segmentation
    except (KeyError, AttributeError, ValueError, TypeError) as err:
        raise ValueError(f"{name} is not an SBD class annotation (a MATLAB struct GTcls with "
                         f"a field Segmentation): {type(err).__name__}: {err}") from err
    return segmentation.astype("uint8")


def train_aug_names(sbd_train, sbd_val, voc_train, voc_val):
    """train_aug: ``(SBD train | SBD val | VOC train) - VOC val``, sorted."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def locate(dl_manager, root, archive, folder, required):
    """The directory holding ``folder`` (relative path): the manual directory when it has
    it, else the extraction of ``archive``; checks ``required`` under ``folder``."""
    top = folder.split("/")[0]
    if os.path.isdir(os.path.join(root, top)):
        base = root
    elif os.path.isfile(os.path.join(root, archive)):
        base = os.fspath(dl_manager.extract(os.path.join(root, archive)))
    else:
        raise missing_error(f"SBD / VOC files ({archive} or {top}/)", root, INSTRUCTIONS)
    directory = os.path.join(base, folder)
    for rel in required:
        if not os.path.exists(os.path.join(directory, rel)):
            raise missing_error(f"SBD / VOC files ({folder}/{rel})", base, INSTRUCTIONS)
    return directory


class SbdVocAug(MaskedImageBuilder):
    """VOC 2012 train_aug / val with SBD annotations (module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def class_names(self):
        return list(CLASS_NAMES)

    def _split_generators(self, dl_manager):
        root = manual_dir(dl_manager, "SBD and Pascal VOC 2012", INSTRUCTIONS)
        sbd = locate(dl_manager, root, SBD_ARCHIVE, SBD_DIR, SBD_FILES)
        voc = locate(dl_manager, root, VOC_ARCHIVE, VOC_DIR, VOC_FILES)
        lists = os.path.join(voc, "ImageSets", "Segmentation")
        voc_train = read_names(os.path.join(lists, "train.txt"))
        voc_val = read_names(os.path.join(lists, "val.txt"))
        names = {"train": train_aug_names(read_names(os.path.join(sbd, "train.txt")),
                                          read_names(os.path.join(sbd, "val.txt")),
                                          voc_train, voc_val),
                 "validation": sorted(voc_val)}
        voc_labelled = set(voc_train) | set(voc_val)
        pairs = {split: [self._pair(n, sbd, voc, n in voc_labelled) for n in split_names]
                 for split, split_names in names.items()}
        for split, split_pairs in pairs.items():
            if len(split_pairs) != OFFICIAL_COUNTS[split]:
                logging.warning("[sbd] split %s: %d images (the official set has %d).",
                                split, len(split_pairs), OFFICIAL_COUNTS[split])
        return self._pairs_split(pairs)

    @staticmethod
    def _pair(name, sbd, voc, from_voc):
        """The ``Pair`` of ``name``: VOC's image and PNG labels, or SBD's image and .mat."""
        if from_voc:
            base, image, label = voc, f"JPEGImages/{name}.jpg", f"SegmentationClass/{name}.png"
            decode, shown = read_label_png, VOC_DIR
        else:
            base, image, label = sbd, f"img/{name}.jpg", f"cls/{name}.mat"
            decode, shown = read_sbd_mat, SBD_DIR
        image_name, mask_name = f"{shown}/{image}", f"{shown}/{label}"
        image, label = os.path.join(base, image), os.path.join(base, label)
        for path in (image, label):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is listed in the split files but missing: "
                                        "use the complete archives.\nPut there:"
                                        f"{INSTRUCTIONS}")
        read = file_reader(label)
        return Pair(key=name, image_name=image_name, mask_name=mask_name,
                    read_image=file_reader(image), read_mask=lambda: decode(read(), mask_name))
