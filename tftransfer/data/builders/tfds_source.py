"""Food-101, ImageNet and Places365 through tfds' own builders, stored resized once.

tfds' ``food101``, ``imagenet2012`` and ``places365_small`` keep the original JPEGs.
``TfdsSource`` reads a prepared copy (``source_data_dir``), decodes each image once and
stores it resized as uint8, with the source's splits and class names (read from the
source's tfds info). Nothing is downloaded unless ``download=True`` is passed:
``imagenet2012`` is prepared from the ILSVRC tar files in the manual directory
(``download_config=tfds.download.DownloadConfig(manual_dir=...)``, only read); the others
must already be prepared (e.g. with ``tfds build food101 --data_dir=...`` on a connected
machine, then copied here).
"""
import dataclasses
import os

import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.builders.base import (ResizeConfig, ResizedImageBuilder, choice_config,
                                           config_arg, missing_error)

SOURCES = ("food101", "imagenet2012", "places365_small")
# Labelled splits kept: "validation" is Food-101's official test set and the ImageNet /
# Places365 validation set (Places365's "test" split has no labels).
SOURCE_SPLITS = ("train", "validation")
IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
INSTRUCTIONS = """
  For imagenet2012 only, when no prepared tfds imagenet2012 is in source_data_dir:
  ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from https://image-net.org).
  food101 and places365_small need no manual files (a prepared copy in source_data_dir).
"""


@dataclasses.dataclass(eq=False)
class TfdsSourceConfig(ResizeConfig):
    """``source``: the tfds dataset name."""
    source: str = "food101"


def tfds_source_config(source, resize=256, keep_aspect=False):
    """The config named like ``food101_square256``."""
    return choice_config(TfdsSourceConfig, "source", source, SOURCES, resize, keep_aspect)


def _instructions(builder):
    if builder.name == "imagenet2012":
        return ("  the manual directory with " + " and ".join(IMAGENET_TARS) +
                " (from https://image-net.org), or a prepared tfds imagenet2012 in "
                f"{builder.data_dir}.")
    return (f"  a prepared tfds {builder.name} in {builder.data_dir} (dataset_info.json and "
            f"its record files), made with `tfds build {builder.name} --data_dir=...` on a "
            "machine with internet; or pass download=True to let tfds download it.")


def prepare_source(name, data_dir, manual_dir=None, download=False):
    """The tfds builder of ``name``, prepared from local files; raises if impossible."""
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    has_tars = manual_dir and all(os.path.exists(os.path.join(manual_dir, t))
                                  for t in IMAGENET_TARS)
    if name == "imagenet2012" and has_tars:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    elif download:
        builder.download_and_prepare()
    else:
        where = manual_dir if name == "imagenet2012" and manual_dir else builder.data_dir
        raise missing_error(f"tfds {name}", where, _instructions(builder))
    return builder


class TfdsSource(ResizedImageBuilder):
    """A tfds image-classification dataset re-stored resized (splits and classes kept)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    BUILDER_CONFIGS = [tfds_source_config(s, keep_aspect=k) for s in SOURCES
                       for k in (False, True)]
    TEST_SPLIT = "validation"

    def __init__(self, *, source_data_dir=None, download=False, **kwargs):
        """``source_data_dir``: the tfds data_dir of the source; ``download``: let tfds
        download it (food101, places365_small)."""
        self._source_data_dir = source_data_dir
        self._download = download
        super().__init__(**kwargs)

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, resize, keep_aspect, source,
                       source_data_dir=None, download=False):
        del manual_dir  # The ILSVRC tar files, if any, are given when preparing.
        return {"config": config_arg(cls, tfds_source_config(source, resize, keep_aspect)),
                "source_data_dir": source_data_dir or data_dir, "download": download}

    def _local_source(self):
        """The prepared source (and the ILSVRC tar files' directory, if given)."""
        where = f"tfds {self.builder_config.source} in {self._source_data_dir}"
        return f"{where} or {self._local_files}" if self._local_files else where

    def _log_download_bytes(self):
        if not self._download:
            return super()._log_download_bytes()
        logging.info("Preparing %s (%s) from %s, which tfds downloads if it is not prepared "
                     "there, into %s", self.name, self.builder_config.name,
                     self._local_source(), self.data_dir)
        return None

    def _class_label(self):
        source = tfds.builder(self.builder_config.source, data_dir=self._source_data_dir)
        return tfds.features.ClassLabel(names=source.info.features["label"].names)

    def _split_generators(self, dl_manager):
        source = prepare_source(self.builder_config.source, self._source_data_dir,
                                _optional_manual_dir(dl_manager), self._download)
        return self._items_split({split: _source_items(source, split)
                                  for split in SOURCE_SPLITS})


def _optional_manual_dir(dl_manager):
    """tfds' manual directory (a str), or None when it does not exist or is empty."""
    try:
        return os.fspath(dl_manager.manual_dir)
    except AssertionError:  # tfds: missing or empty.
        return None


def _source_items(builder, split):
    """Streams ``(key, filename, label, read_bytes)`` from a prepared tfds split."""
    ds = builder.as_dataset(split, decoders={"image": tfds.decode.SkipDecoding()})
    for i, ex in enumerate(ds.as_numpy_iterator()):
        name = ex["file_name"].decode() if "file_name" in ex else f"{split}/{i}"
        yield f"{split}/{i}", name, int(ex["label"]), (lambda data=ex["image"]: data)
