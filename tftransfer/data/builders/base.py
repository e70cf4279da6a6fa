"""Shared machinery of the tftransfer tfds builders.

Every builder stores images **once, already resized** (256x256, or shorter side 256 with
``keep_aspect``) as raw uint8 tensors, so that training only crops, flips and jitters.
Features: ``image`` (HxWx3 uint8), ``image/filename`` (text), ``label`` (class index).

The builders are registered with tfds when their module is imported (importing
``tftransfer.data.builders`` imports them all), so ``tfds.builder("caltech256", ...)``
finds them. Their files come from tfds' manual directory, never downloaded: pass it as
``download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=...))``;
``MANUAL_DOWNLOAD_INSTRUCTIONS`` of each builder says what goes there. The manual
directory is only read: what a builder writes (split lists, the stored data) goes under
its ``data_dir``. A missing directory or file raises ``FileNotFoundError`` naming the
directory and what must be put there. A file that cannot be read or decoded is logged by
name (absl, warning) and skipped. Each split ends with one summary line: the images
stored and the files skipped, by kind (``SKIP_KINDS``); the counts are kept in
``builder.info.metadata["skipped_files"]`` (see ``skipped_files``). Preparing logs (absl)
``Preparing <name> (<config>) from <manual_dir> (local files, nothing is downloaded)``
instead of tfds' "Downloading and preparing dataset Unknown size ..." line.
"""
import collections
import dataclasses
import importlib.resources
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.images import UndecodableImageError, load_resized
from tftransfer.data.ordered_map import ordered_map

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SKIPPED_FILES = "skipped_files"  # info.metadata key: {split: {kind: count}}
# Why a file was left out. "unreadable" is counted while decoding (every builder); the other
# kinds by the listing of a class-per-folder tree (class_folders).
SKIP_KINDS = {
    "unreadable": "unreadable or not decodable as an image",
    "not_image": "without an image extension",
    "hidden": "hidden (name starting with '.')",
    "in_subfolder": "inside a sub-folder of a class folder",
    "outside_class": "not inside a class folder",
}
HOW_TO_PASS = ("Then pass that directory as the manual directory: manual_dir= of "
               "tftransfer.data.pipeline (tftransfer prepare --manual_dir=...), or "
               "download_config=tfds.download.DownloadConfig(manual_dir=...) of "
               "download_and_prepare.")


@dataclasses.dataclass(eq=False)
class ResizeConfig(tfds.core.BuilderConfig):
    """A builder config that fixes how images are stored: ``resize`` px, aspect kept or not."""
    resize: int = 256
    keep_aspect: bool = False


def config_suffix(resize, keep_aspect):
    """Config-name part describing the storage size, e.g. ``square256`` or ``aspect256``."""
    return f"{'aspect' if keep_aspect else 'square'}{resize}"


def choice_config(config_cls, field, value, allowed, resize=256, keep_aspect=False):
    """A ``config_cls`` named ``<value>_<square|aspect><resize>`` whose ``field`` is ``value``.

    Raises:
      ValueError: ``value`` is not one of ``allowed``.
    """
    if value not in allowed:
        raise ValueError(f"{field} must be one of {allowed}, got {value!r}.")
    return config_cls(name=f"{value}_{config_suffix(resize, keep_aspect)}", version="1.0.0",
                      resize=resize, keep_aspect=keep_aspect, **{field: value})


def config_arg(builder_cls, config):
    """``config`` as tfds wants it: its name when the class already registers that config."""
    registered = builder_cls.builder_configs.get(config.name)
    if registered is None:
        return config
    if dataclasses.asdict(registered) != dataclasses.asdict(config):
        raise ValueError(f"Config name {config.name!r} is registered with other settings.")
    return config.name


def resource_path(name):
    """Path of the shipped file ``tftransfer/data/resources/<name>``."""
    return os.fspath(importlib.resources.files("tftransfer.data") / "resources" / name)


def missing_error(what, directory, instructions):
    """The error raised when local data is missing: where it was expected and what goes there."""
    return FileNotFoundError(
        f"{what} not found. Expected directory: {directory}\n"
        f"Put there:\n{instructions.strip()}\n{HOW_TO_PASS}")


def require_paths(directory, relative_paths, what, instructions):
    """Raises ``missing_error`` unless ``directory`` and every path under it exist."""
    if not directory or not os.path.isdir(directory):
        raise missing_error(what, directory, instructions)
    for rel in relative_paths:
        if not os.path.exists(os.path.join(directory, rel)):
            raise missing_error(f"{what} ({rel})", directory, instructions)


def manual_dir(dl_manager, what, instructions, relative_paths=()):
    """tfds' manual directory of ``dl_manager`` (a str), checked to hold ``relative_paths``.

    Raises ``FileNotFoundError`` naming the directory and what to put there when it is
    missing, empty or lacks one of the paths.
    """
    try:
        directory = os.fspath(dl_manager.manual_dir)
    except AssertionError as err:  # tfds: the directory does not exist or is empty.
        raise FileNotFoundError(f"{what} not found. {err}\n{HOW_TO_PASS}") from err
    require_paths(directory, relative_paths, what, instructions)
    return directory


def list_images(directory):
    """Sorted file names (not paths) of images in ``directory``, by extension, hidden excluded."""
    return sorted(f for f in os.listdir(directory)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))


def list_class_dirs(directory):
    """Sorted names of the sub-directories of ``directory`` (one per class)."""
    return sorted(d for d in os.listdir(directory)
                  if not d.startswith(".") and os.path.isdir(os.path.join(directory, d)))


def check_class_folders(directory, class_names, dataset, names_source):
    """The class folders of ``directory``, sorted; each must be one of ``class_names``.

    Raises ``ValueError`` naming the folders that are not (``names_source`` says where the
    official list is); warns when some classes have no folder.
    """
    found = list_class_dirs(directory)
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise ValueError(f"Folders {unknown} in {directory} are not {dataset} classes of "
                         f"{names_source}: remove or rename them to the official names.")
    if len(found) != len(class_names):
        logging.warning("[%s] only %d of %d class folders present in %s.", dataset,
                        len(found), len(class_names), directory)
    return found


class ResizedImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base: builders yield ``(key, filename, label, read_bytes)``; this class decodes,
    resizes, skips-and-reports undecodable files and writes uint8 tensors.

    Subclasses implement ``_class_label()`` (a ``tfds.features.ClassLabel`` with the fixed
    class names) and ``_split_generators``, which returns
    ``self._items_split({split: items})``; ``TRAIN_SPLIT`` / ``TEST_SPLIT`` name the
    splits the pipeline trains and evaluates on, and the classmethod ``builder_kwargs``
    turns pipeline options into the arguments of ``tfds.builder``.
    """

    TRAIN_SPLIT = "train"
    TEST_SPLIT = "test"

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, resize, keep_aspect, **options):
        """``tfds.builder`` arguments (config and constructor keywords) for pipeline options."""
        raise NotImplementedError

    def _class_label(self):
        raise NotImplementedError

    def download_and_prepare(self, *, download_config=None, **kwargs):
        """tfds' ``download_and_prepare``; remembers the manual directory for the log line."""
        self._local_files = download_config.manual_dir if download_config else None
        return super().download_and_prepare(download_config=download_config, **kwargs)

    def _local_source(self):
        """Where the files are read from, for the log line (the manual directory)."""
        return os.fspath(self._local_files) if self._local_files else "local files"

    def _log_download_bytes(self):
        """Replaces tfds' stdout line (these builders download nothing) by an absl one."""
        logging.info("Preparing %s (%s) from %s (local files, nothing is downloaded) into %s",
                     self.name, self.builder_config.name, self._local_source(), self.data_dir)

    def _log_download_done(self):
        logging.info("Prepared %s (%s) into %s; later loads reuse it.", self.name,
                     self.builder_config.name, self.data_dir)

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8,
                                              encoding="bytes"),
                "image/filename": tfds.features.Text(),
                "label": self._class_label(),
            }),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(),
        )

    def _generate_examples(self, items, split_name, listing_skipped=None):
        """Yields stored examples; logs each unreadable file and the split's summary.

        ``listing_skipped``: ``{kind: count}`` of the files the builder's listing left out;
        the unreadable ones are added, and the total goes to the info metadata. Decoding
        and resizing overlap on a few threads (``ordered_map``).
        """
        cfg = self.builder_config
        skipped = collections.Counter({"unreadable": 0, **(listing_skipped or {})})
        stored = 0

        def load(item):
            try:
                return item, load_resized(item[3](), cfg.resize, cfg.keep_aspect), None
            except (UndecodableImageError, OSError) as err:
                return item, None, err

        for (key, filename, label, _), image, err in ordered_map(load, items):
            if err is not None:
                skipped["unreadable"] += 1
                logging.warning("[%s] skipping %s: cannot read or decode it (%s)",
                                self.name, filename, err)
                continue
            stored += 1
            yield key, {"image": image, "image/filename": filename, "label": label}
        self._record_skipped(split_name, stored, dict(skipped))

    def _record_skipped(self, split_name, stored, skipped):
        """Logs the split's summary line and keeps ``skipped`` in the info metadata."""
        self.info.metadata.setdefault(SKIPPED_FILES, {})[split_name] = skipped
        log = logging.warning if any(skipped.values()) else logging.info
        log("[%s] split %s: %d image(s) stored; skipped %s", self.name, split_name, stored,
            describe_skipped(skipped))

    def _items_split(self, items_by_split, skipped_by_split=None):
        """``{split: items}`` (and ``{split: {kind: count}}`` left out by the listing) ->
        the dict of generators tfds expects."""
        skipped_by_split = skipped_by_split or {}
        return {split: self._generate_examples(items, split, skipped_by_split.get(split))
                for split, items in items_by_split.items()}


def skipped_files(builder):
    """``{split: {kind: count}}`` of the files left out when ``builder`` was prepared
    (kinds of ``SKIP_KINDS``); empty for data prepared before the counts were kept."""
    return dict(builder.info.metadata.get(SKIPPED_FILES, {}))


def describe_skipped(skipped):
    """``{kind: count}`` -> ``"no file"`` or e.g. ``"3 file(s): 1 hidden (...), 2 inside a
    sub-folder of a class folder"`` (kinds in ``SKIP_KINDS`` order)."""
    parts = [f"{skipped[kind]} {what}" for kind, what in SKIP_KINDS.items() if skipped.get(kind)]
    if not parts:
        return "no file"
    return f"{sum(skipped.values())} file(s): " + ", ".join(parts)


def file_reader(path):
    """A zero-argument callable returning the bytes of ``path`` (read lazily)."""
    def read():
        with open(path, "rb") as f:
            return f.read()
    return read


MAX_LISTED = 20  # paths named in one error message


def listing(lines):
    """Indented lines, at most :data:`MAX_LISTED` of them, then how many more there are (the
    file lists of the builders' error messages)."""
    lines = list(lines)
    shown = [f"  {line}" for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f"  ... and {len(lines) - MAX_LISTED} more")
    return "\n".join(shown)
