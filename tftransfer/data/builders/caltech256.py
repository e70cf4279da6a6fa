"""Caltech 256-30 / 256-60: N random training and 20 test images per class, seeded.

Split rule (Li et al. 2018, Section 4.1): per class, ``train_per_class`` images drawn at
random, then ``test_per_class`` drawn from the remaining ones. The draw: class folders
sorted, file names sorted, ``numpy.random.default_rng([seed, class_index])`` (the index
among the class folders present) ``.permutation``; the first ``train_per_class`` go to
train, the next ``test_per_class`` to test.

The chosen files are written next to the prepared data, as
``<builder.data_dir>/splits/<train>_<test>_seed<seed>_{train,test}.txt``; the manual
directory is only read. To train on the same images as someone else (even if NumPy's
generator ever changed), copy their two files into ``<manual_dir>/tftransfer_splits/``:
lists found there are used instead of a new draw.

Labels are the positions in the official list of the 257 classes
(``resources/caltech256_classes.txt``, ``001.ak47`` ... ``257.clutter``).
"""
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.builders.base import (ResizeConfig, ResizedImageBuilder,
                                           check_class_folders, config_arg, config_suffix,
                                           file_reader, list_images, manual_dir,
                                           resource_path)
from tftransfer.io_utils import atomic_write_text

INSTRUCTIONS = """
  256_ObjectCategories/   extracted from 256_ObjectCategories.tar
                          (https://data.caltech.edu/records/nyy15-4j048), holding the
                          257 class folders 001.ak47/ ... 257.clutter/ with their .jpg files.
  tftransfer_splits/      optional: split lists <n>_20_seed<seed>_{train,test}.txt to reuse
                          (copied from the splits/ folder of a prepared copy).
"""
CLASSES_FILE = "caltech256_classes.txt"
MANUAL_PATHS = ("256_ObjectCategories",)  # what the manual directory must hold
SHARED_SPLIT_DIR = "tftransfer_splits"  # Under manual_dir: lists to reuse (read only).
SPLIT_DIR = "splits"  # Under the builder's data_dir: the lists used (written).


@dataclasses.dataclass(eq=False)
class Caltech256Config(ResizeConfig):
    """``train_per_class`` (30 or 60) and ``test_per_class`` (20) images per class, ``seed``."""
    train_per_class: int = 30
    test_per_class: int = 20
    seed: int = 0


def caltech256_config(train_per_class, resize=256, keep_aspect=False, seed=0,
                      test_per_class=20):
    """The config named like ``30_square256_seed0``."""
    return Caltech256Config(
        name=f"{train_per_class}_{config_suffix(resize, keep_aspect)}_seed{seed}",
        version="1.0.0", resize=resize, keep_aspect=keep_aspect, seed=seed,
        train_per_class=train_per_class, test_per_class=test_per_class)


def draw_split(files_by_class, train_per_class, test_per_class, seed):
    """``{class: sorted files}`` -> ``(train, test)`` lists of ``class/file`` paths."""
    train, test = [], []
    for index, cls in enumerate(sorted(files_by_class)):
        files = sorted(files_by_class[cls])
        if len(files) < train_per_class + test_per_class:
            raise ValueError(f"Caltech class {cls} has {len(files)} images, fewer than "
                             f"{train_per_class} train + {test_per_class} test.")
        order = np.random.default_rng([seed, index]).permutation(len(files))
        chosen = [f"{cls}/{files[i]}" for i in order]
        train += chosen[:train_per_class]
        test += chosen[train_per_class:train_per_class + test_per_class]
    return train, test


def split_file_names(config):
    """``{split: file name}`` of the split lists of ``config``."""
    stem = f"{config.train_per_class}_{config.test_per_class}_seed{config.seed}"
    return {split: f"{stem}_{split}.txt" for split in ("train", "test")}


class Caltech256(ResizedImageBuilder):
    """Caltech-256 with the paper's random per-class split, stored resized."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    BUILDER_CONFIGS = [caltech256_config(n, keep_aspect=k) for n in (30, 60)
                       for k in (False, True)]

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, resize, keep_aspect, train_per_class,
                       split_seed=0):
        del data_dir, manual_dir  # The manual directory is given when preparing.
        config = caltech256_config(train_per_class, resize, keep_aspect, split_seed)
        return {"config": config_arg(cls, config)}

    def _class_label(self):
        return tfds.features.ClassLabel(names_file=resource_path(CLASSES_FILE))

    def split_files(self, root):
        """Train/test ``class/file`` lists for the manual directory ``root``: those of
        ``root/tftransfer_splits/`` when present, else drawn (``draw_split``)."""
        cfg = self.builder_config
        shared = {s: os.path.join(root, SHARED_SPLIT_DIR, name)
                  for s, name in split_file_names(cfg).items()}
        if all(os.path.exists(p) for p in shared.values()):
            logging.info("[caltech256] using the split files %s and %s", shared["train"],
                         shared["test"])
            return tuple(_read_list(shared[s]) for s in ("train", "test"))
        images = os.path.join(root, "256_ObjectCategories")
        classes = check_class_folders(images, self.info.features["label"].names,
                                      "Caltech-256", f"resources/{CLASSES_FILE}")
        files = {c: list_images(os.path.join(images, c)) for c in classes}
        return draw_split(files, cfg.train_per_class, cfg.test_per_class, cfg.seed)

    def _write_split_files(self, train, test):
        """Writes the lists used under ``data_dir/splits/`` (next to the stored data)."""
        for split, names in (("train", train), ("test", test)):
            path = os.path.join(self.data_dir, SPLIT_DIR,
                                split_file_names(self.builder_config)[split])
            atomic_write_text(path, "\n".join(names) + "\n")

    def _split_generators(self, dl_manager):
        root = manual_dir(dl_manager, "Caltech-256", INSTRUCTIONS, MANUAL_PATHS)
        images = os.path.join(root, "256_ObjectCategories")
        label = self.info.features["label"].str2int
        train, test = self.split_files(root)
        self._write_split_files(train, test)
        return self._items_split({
            split: [(rel, rel, label(rel.split("/")[0]),
                     file_reader(os.path.join(images, rel))) for rel in names]
            for split, names in (("train", train), ("test", test))})


def _read_list(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line]
