"""Shared machinery of the tftransfer tfds builders.

Every builder stores images **once, already resized** (256x256, or shorter side 256 with
``keep_aspect``) as raw uint8 tensors, so that training only crops, flips and jitters.
Features: ``image`` (HxWx3 uint8), ``image/filename`` (text), ``label`` (class index).

Files come from a local ``manual_dir`` (never downloaded). A missing directory or file
raises ``FileNotFoundError`` naming the directory and what must be put there. A file that
cannot be read or decoded is logged by name (absl, warning) and skipped. Each split ends
with one summary line: the images stored and the files skipped, by kind (``SKIP_KINDS``);
the counts are kept in ``builder.info.metadata["skipped_files"]`` (see ``skipped_files``).
"""
import collections
import concurrent.futures
import dataclasses
import itertools
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.images import UndecodableImageError, load_resized

CHUNK = 256  # Items decoded concurrently before being written, in order.
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


@dataclasses.dataclass(eq=False)
class ResizeConfig(tfds.core.BuilderConfig):
    """A builder config that fixes how images are stored: ``resize`` px, aspect kept or not."""
    resize: int = 256
    keep_aspect: bool = False


def config_suffix(resize, keep_aspect):
    """Config-name part describing the storage size, e.g. ``square256`` or ``aspect256``."""
    return f"{'aspect' if keep_aspect else 'square'}{resize}"


def config_arg(builder_cls, config):
    """``config`` as tfds wants it: its name when the class already registers that config."""
    registered = builder_cls.builder_configs.get(config.name)
    if registered is None:
        return config
    if dataclasses.asdict(registered) != dataclasses.asdict(config):
        raise ValueError(f"Config name {config.name!r} is registered with other settings.")
    return config.name


def missing_error(what, directory, instructions):
    """The error raised when local data is missing: where it was expected and what goes there."""
    return FileNotFoundError(
        f"{what} not found. Expected directory: {directory}\n"
        f"Put there:\n{instructions.strip()}\n"
        "Then pass that directory as manual_dir (tools/prepare_dataset.py --manual_dir=...).")


def require_paths(directory, relative_paths, what, instructions):
    """Raises ``missing_error`` unless ``directory`` and every path under it exist."""
    if not directory or not os.path.isdir(directory):
        raise missing_error(what, directory, instructions)
    for rel in relative_paths:
        if not os.path.exists(os.path.join(directory, rel)):
            raise missing_error(f"{what} ({rel})", directory, instructions)


def list_images(directory):
    """Sorted file names (not paths) of images in ``directory``, by extension, hidden excluded."""
    return sorted(f for f in os.listdir(directory)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))


def list_class_dirs(directory):
    """Sorted names of the sub-directories of ``directory`` (one per class)."""
    return sorted(d for d in os.listdir(directory)
                  if not d.startswith(".") and os.path.isdir(os.path.join(directory, d)))


class ResizedImageBuilder(tfds.core.GeneratorBasedBuilder):
    """Base: builders yield ``(key, filename, label, read_bytes)``; this class decodes,
    resizes, skips-and-reports undecodable files and writes uint8 tensors.

    Subclasses implement ``_class_names()`` (read from ``manual_dir``; prepared data
    restores them from disk instead) and ``_split_generators``, which returns
    ``self._items_split({split: items})``.
    """

    def __init__(self, *, manual_dir=None, **kwargs):
        self._manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
        super().__init__(**kwargs)

    def _class_names(self):
        raise NotImplementedError

    def _info(self):
        # Prepared data restores its class names and metadata from disk; fresh data lists
        # the names here.
        fresh = self._manual_dir and os.path.isdir(self._manual_dir)
        names = self._class_names() if fresh else None
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8,
                                              encoding="bytes"),
                "image/filename": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=names),
            }),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(),
        )

    def _generate_examples(self, items, split_name, listing_skipped=None):
        """Yields stored examples; logs each unreadable file and the split's summary.

        ``listing_skipped``: ``{kind: count}`` of the files the builder's listing left out;
        the unreadable ones are added, and the total goes to the info metadata. Decoding
        and resizing run in a thread pool, ``CHUNK`` items at a time, in order.
        """
        cfg = self.builder_config
        skipped = collections.Counter({"unreadable": 0, **(listing_skipped or {})})
        stored = 0

        def load(item):
            try:
                return load_resized(item[3](), cfg.resize, cfg.keep_aspect), None
            except (UndecodableImageError, OSError) as err:
                return None, err

        with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
            for chunk in _chunks(items, CHUNK):
                for (key, filename, label, _), (image, err) in zip(chunk, pool.map(load, chunk)):
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


def _chunks(items, size):
    """Consecutive lists of ``size`` items (the last one shorter) from any iterable."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
