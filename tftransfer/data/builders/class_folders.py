"""A user dataset in class-per-folder layout, through the same interface as the others.

Layout: ``<manual_dir>/<split>/<class>/<image>`` for each split folder present among
``train`` (required), ``validation``, ``test``; classes are the sorted union of class
folder names over the splits (label = position).

Prepared: the files directly inside a class folder whose name has an image extension
(``IMAGE_EXTENSIONS``, any case) and does not start with ``.``. Everything else is left out
and counted per split, by kind (``base.SKIP_KINDS``): hidden entries (a hidden folder counts
as one), files without an image extension, files inside sub-folders of a class folder
(counted recursively), files directly in a split folder, image names that are not regular
files (broken links...), and, while preparing, files that cannot be decoded. The counts are
logged (one line per split) and kept in ``builder.info.metadata["skipped_files"]``.

Refused before anything is written, by a ``ValueError`` naming every offending path: a
file or class-folder name that is not valid UTF-8 (shown as bytes), a class folder with no
image to prepare, a split folder with no class folder.

Prepared data is keyed by a fingerprint of its inputs: the config name is
``<dataset_name>_<square|aspect><resize>_<12 hex digits>``, the digits from SHA-256 over
the preprocessing options and every prepared file's split, class, name, size and
modification time (ns). Another tree with the same folder name, or the same tree with an
image added, removed, renamed or rewritten (new size or mtime), is prepared anew, in its
own directory; the same unchanged tree (or a copy keeping modification times) is reused.
Listing costs one ``stat`` per file at every load.

Unlike the other builders, this one lists its tree when it is constructed
(``ClassFolders(root=...)``): the class names tfds needs in ``_info`` and the fingerprint in
the config name are only known from the tree. Preparing then reads tfds' manual directory
(``download_config=tfds.download.DownloadConfig(manual_dir=<the same tree>)``), lists it
again and refuses, before anything is written, a tree whose listing differs from the one
the builder was made for (another tree, or files changed in between).
"""
import collections
import dataclasses
import hashlib
import json
import os

import tensorflow_datasets as tfds

from tftransfer.data.builders.base import (IMAGE_EXTENSIONS, ResizeConfig, ResizedImageBuilder,
                                           config_suffix, describe_skipped, file_reader,
                                           listing, manual_dir, require_paths)

SPLITS = ("train", "validation", "test")
# Kinds of files left out by the listing (``unreadable`` is added while decoding).
LISTING_KINDS = ("not_image", "hidden", "in_subfolder", "outside_class")
FINGERPRINT_DIGITS = 12
MANUAL_PATHS = ("train",)  # what the tree (the manual directory) must hold
INSTRUCTIONS = """
  train/<class>/<image files>        (required)
  validation/<class>/<image files>   (optional)
  test/<class>/<image files>         (optional; the training driver evaluates on it)
  One sub-folder per class; the same class names in every split.
"""


@dataclasses.dataclass(frozen=True)
class FolderTree:
    """A listed class-per-folder tree: what will be prepared and what is left out.

    ``images``: ``{split: [(class, file name, size in bytes, mtime in ns), ...]}``, sorted;
    ``skipped``: ``{split: {kind: count}}`` over ``LISTING_KINDS``.
    """
    root: str
    images: dict
    skipped: dict

    @property
    def classes(self):
        """Sorted union of the class folder names over the splits."""
        return sorted({image[0] for images in self.images.values() for image in images})

    def fingerprint(self, options):
        """``FINGERPRINT_DIGITS`` hex digits of SHA-256 over ``options`` (a JSON-able dict)
        and the split, class, name, size and mtime of every file to prepare."""
        text = json.dumps({"options": options, "images": self.images}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_DIGITS]


@dataclasses.dataclass
class _Problems:
    """Offending paths found while listing ``root``, raised together by ``raise_if_any``."""
    root: str
    bad_names: list = dataclasses.field(default_factory=list)
    empty: list = dataclasses.field(default_factory=list)  # "path: what it holds instead"

    def raise_if_any(self):
        """Raises ``ValueError`` naming the names that are not UTF-8, else the empty folders."""
        if self.bad_names:
            raise ValueError(
                f"Class-per-folder dataset {self.root}: {len(self.bad_names)} name(s) are not "
                "valid UTF-8 (shown as bytes):\n"
                f"{listing(repr(os.fsencode(path)) for path in self.bad_names)}\n"
                "Rename them to UTF-8 (e.g. `convmv -r -f latin1 -t utf8 --notest <folder>` "
                "for Latin-1 names), then prepare again.")
        if self.empty:
            raise ValueError(
                f"Class-per-folder dataset {self.root}: folder(s) without images:\n"
                f"{listing(self.empty)}\n"
                "Every class folder needs at least one image file directly inside it and "
                "every split folder at least one class folder: add images or remove the "
                f"folder. Layout:{INSTRUCTIONS}")


def scan_tree(root):
    """Lists the class-per-folder tree ``root`` (module docstring) into a ``FolderTree``.

    Raises ``FileNotFoundError`` (with the layout) when ``root/train`` is missing, and
    ``ValueError`` for names that are not UTF-8 and for folders without images.
    """
    require_paths(root, ["train"], "Class-per-folder dataset", INSTRUCTIONS)
    problems = _Problems(root)
    images, skipped = {}, {}
    for split in SPLITS:
        directory = os.path.join(root, split)
        if os.path.isdir(directory):
            images[split], skipped[split] = _scan_split(directory, problems)
    problems.raise_if_any()
    return FolderTree(root, images, skipped)


def _scan_split(directory, problems):
    """``(images, skipped)`` of one split folder, as in ``FolderTree``; offending paths go
    to ``problems``."""
    images, skipped = [], collections.Counter(dict.fromkeys(LISTING_KINDS, 0))
    class_dirs = 0
    for entry in _entries(directory):
        if entry.name.startswith("."):
            skipped["hidden"] += 1
        elif not entry.is_dir():
            skipped["outside_class"] += 1
        elif not _is_utf8(entry.name):
            class_dirs += 1
            problems.bad_names.append(entry.path)
        else:
            class_dirs += 1
            files, class_skipped = _scan_class(entry.path, problems)
            if not files:
                problems.empty.append(_empty_class(entry.path, class_skipped))
            images += [(entry.name, *file) for file in files]
            skipped.update(class_skipped)
    if not class_dirs:
        problems.empty.append(f"{directory}: no class folder")
    return images, dict(skipped)


def _scan_class(directory, problems):
    """``([(name, size, mtime_ns), ...], {kind: count})`` of one class folder: the files to
    prepare, sorted by name, and the ones left out; names not UTF-8 go to ``problems``."""
    files, skipped = [], collections.Counter()
    for entry in _entries(directory):
        kind = _skip_kind(entry)
        if kind == "in_subfolder":
            skipped[kind] += _count_files(entry.path)
        elif kind:
            skipped[kind] += 1
        elif not _is_utf8(entry.name):
            problems.bad_names.append(entry.path)
        else:
            stat = entry.stat()
            files.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return files, skipped


def _empty_class(directory, skipped):
    """How the class folder ``directory`` without images is named in the error."""
    if not any(skipped.values()):
        return f"{directory}: empty"
    return f"{directory}: no image file (left out: {describe_skipped(skipped)})"


def _skip_kind(entry):
    """Why the entry of a class folder is left out (a ``SKIP_KINDS`` key), or None."""
    if entry.name.startswith("."):
        return "hidden"
    if entry.is_dir():
        return "in_subfolder"
    if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
        return "not_image"
    if not entry.is_file():
        return "unreadable"
    return None


def _entries(directory):
    """The ``os.DirEntry`` objects of ``directory``, sorted by name."""
    with os.scandir(directory) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _count_files(directory):
    """Number of files under ``directory``, at any depth."""
    return sum(len(files) for _, _, files in os.walk(directory))


def _is_utf8(name):
    """Whether the file name ``name`` (from ``os.scandir``) was valid UTF-8 on disk."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # Undecodable bytes come back as lone surrogates.
        return False
    return True


def class_folders_config(dataset_name, tree, resize=256, keep_aspect=False):
    """The config named like ``<dataset_name>_square256_<fingerprint of tree and options>``."""
    options = {"resize": resize, "keep_aspect": keep_aspect}
    name = f"{dataset_name}_{config_suffix(resize, keep_aspect)}_{tree.fingerprint(options)}"
    return ResizeConfig(name=name, version="1.0.0", **options)


class ClassFolders(ResizedImageBuilder):
    """Any ``split/class/image`` directory tree, stored resized, keyed by its fingerprint."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def __init__(self, *, root, dataset_name=None, resize=256, keep_aspect=False, **kwargs):
        """Lists the tree ``root`` (``scan_tree``) and takes the config of its fingerprint;
        ``dataset_name`` defaults to the folder's name. Prepare it with ``root`` as the
        manual directory."""
        root = os.path.expanduser(root)
        self._tree = scan_tree(root)
        config = class_folders_config(dataset_name or os.path.basename(os.path.normpath(root)),
                                      self._tree, resize, keep_aspect)
        super().__init__(config=config, **kwargs)

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, resize, keep_aspect, dataset_name=None):
        del data_dir  # Unused: the tree is the manual directory.
        if not manual_dir:
            raise ValueError("class_folders needs manual_dir=<root with train/<class>/ folders>.")
        return {"root": manual_dir, "dataset_name": dataset_name, "resize": resize,
                "keep_aspect": keep_aspect}

    def _class_label(self):
        return tfds.features.ClassLabel(names=self._tree.classes)

    def _split_generators(self, dl_manager):
        root = manual_dir(dl_manager, "Class-per-folder dataset", INSTRUCTIONS, MANUAL_PATHS)
        tree = scan_tree(root)
        if (tree.images, tree.skipped) != (self._tree.images, self._tree.skipped):
            raise ValueError(
                f"The class-per-folder tree {root} (the manual directory) is not the tree "
                f"{self._tree.root} this builder was made for, or files changed since it "
                "was listed. Make the builder again (ClassFolders(root=<tree>)) and prepare "
                "it with that tree as manual_dir.")
        label = {c: i for i, c in enumerate(tree.classes)}
        items = {split: [(f"{c}/{f}", f"{split}/{c}/{f}", label[c],
                          file_reader(os.path.join(root, split, c, f)))
                         for c, f, _, _ in images]
                 for split, images in tree.images.items()}
        return self._items_split(items, tree.skipped)
