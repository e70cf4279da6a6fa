"""Caltech 256-30 / 256-60: N random training and 20 test images per class, seeded.

Split rule (paper): per class, ``train_per_class`` images drawn at random, then
``test_per_class`` drawn from the remaining ones. The draw: class folders sorted, file
names sorted, ``numpy.random.default_rng([seed, class_index]).permutation``; the first
``train_per_class`` go to train, the next ``test_per_class`` to test. The chosen files
are written to ``<manual_dir>/tftransfer_splits/<config>_seed<seed>_{train,test}.txt``
("next to the data") and reused when they exist, so that two users get the same split
even if NumPy's generator ever changed.
"""
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.builders.base import (ResizeConfig, ResizedImageBuilder, config_suffix,
                                           file_reader, list_class_dirs, list_images,
                                           require_paths)
from tftransfer.io_utils import atomic_write_text

INSTRUCTIONS = """
  256_ObjectCategories/   extracted from 256_ObjectCategories.tar
                          (https://data.caltech.edu/records/nyy15-4j048), holding the
                          257 class folders 001.ak47/ ... 257.clutter/ with their .jpg files.
"""
SPLIT_DIR = "tftransfer_splits"


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


class Caltech256(ResizedImageBuilder):
    """Caltech-256 with the paper's random per-class split, stored resized."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    BUILDER_CONFIGS = [caltech256_config(n, keep_aspect=k) for n in (30, 60)
                       for k in (False, True)]

    def _root(self):
        return os.path.join(self._manual_dir, "256_ObjectCategories")

    def _class_names(self):
        require_paths(self._manual_dir, ["256_ObjectCategories"], "Caltech-256", INSTRUCTIONS)
        return list_class_dirs(self._root())

    def split_files(self):
        """Train/test ``class/file`` lists: read from the split files, else drawn and written."""
        cfg = self.builder_config
        stem = os.path.join(self._manual_dir, SPLIT_DIR,
                            f"{cfg.train_per_class}_{cfg.test_per_class}_seed{cfg.seed}")
        paths = {s: f"{stem}_{s}.txt" for s in ("train", "test")}
        if all(os.path.exists(p) for p in paths.values()):
            return tuple(open(paths[s], encoding="utf-8").read().split() for s in paths)
        files = {c: list_images(os.path.join(self._root(), c)) for c in self._class_names()}
        train, test = draw_split(files, cfg.train_per_class, cfg.test_per_class, cfg.seed)
        for split, names in (("train", train), ("test", test)):
            atomic_write_text(paths[split], "\n".join(names) + "\n")
        logging.info("[caltech256] wrote split files %s and %s", paths["train"], paths["test"])
        return train, test

    def _split_generators(self, dl_manager):
        del dl_manager  # All files are local.
        label = {c: i for i, c in enumerate(self._class_names())}
        train, test = self.split_files()
        return self._items_split({
            split: [(rel, rel, label[rel.split("/")[0]],
                     file_reader(os.path.join(self._root(), rel))) for rel in names]
            for split, names in (("train", train), ("test", test))})
