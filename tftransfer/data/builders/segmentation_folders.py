"""Image / label-mask pairs as tfds builders: the shared base, and a user's own folders.

**Stored examples** (every segmentation builder, ``MaskedImageBuilder``): ``image`` (RGB
uint8 ``[H, W, 3]``, at the original size: a JPEG or PNG file already in RGB is stored as
its own bytes, anything else Pillow reads is converted to RGB and stored as PNG), ``mask``
(uint8 ``[H, W, 1]``, PNG: class index per pixel, ``IGNORE_LABEL`` = 255 not counted) and
``image/filename``. ``info.metadata`` holds ``class_names``, ``num_classes`` and
``ignore_label``. Preparing refuses, with a ``ValueError`` naming the file, an image that
cannot be decoded, a mask that is not single-channel, a mask of another size than its
image and a label that is neither a class (``0..num_classes - 1``) nor 255; tfds then
keeps nothing of the half-written split. The manual directory is only read.

**User folders** (``SegmentationFolders``, tfds name ``segmentation_folders``)::

    <root>/train/images/<name>.<jpg|png|...>    required
    <root>/train/masks/<name>.png               one mask per image, same <name>
    <root>/validation/{images,masks}/           optional
    <root>/test/{images,masks}/                 optional
    <root>/classes.txt                          optional: one class name per line

Masks are single-channel PNGs (greyscale or palette: the palette index is the label) of
class indices, 255 for pixels to ignore. With ``classes.txt``, label ``i`` is its line
``i`` (empty lines skipped) and every other label but 255 is refused; without it,
``num_classes`` is the largest label found in the prepared masks plus one and the names are
``class_0, class_1, ...``. Hidden files (``.name``) and files without an image extension
(``.png`` for masks) are left out and logged. Refused before anything is written, by a
``ValueError`` naming the files: an image without a mask or a mask without an image, two
images (or masks) with the same ``<name>``, a split without ``images/`` and ``masks/``.

The tree is listed when the builder is made (as ``class_folders`` does): the config name
``<dataset_name>_<12 hex digits>`` is a SHA-256 fingerprint of every listed file's split,
name, size and modification time and of ``classes.txt``, so a changed tree is prepared
anew and an unchanged one reused.
"""
import collections
import dataclasses
import hashlib
import io
import json
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from tftransfer.data.builders.base import IMAGE_EXTENSIONS, file_reader, listing
from tftransfer.data.ordered_map import ordered_map

IGNORE_LABEL = 255
SPLITS = ("train", "validation", "test")
MASK_EXTENSIONS = (".png",)
CLASSES_FILE = "classes.txt"
FINGERPRINT_DIGITS = 12
MANUAL_PATHS = ("train/images", "train/masks")  # what the tree must hold
INSTRUCTIONS = """
  train/images/<name>.<jpg|png|...>   (required) the images
  train/masks/<name>.png              (required) one single-channel PNG per image, same
                                      <name>: class index per pixel, 255 = ignore
  validation/images/, validation/masks/   (optional, same layout)
  test/images/, test/masks/               (optional, same layout)
  classes.txt                         (optional) one class name per line, label = line
"""
PASSTHROUGH_FORMATS = ("JPEG", "PNG")  # RGB files of these formats are stored as they are.
HOW_TO_PASS = ("Then pass that directory as manual_dir= of tftransfer.data.segmentation_pipeline."
               "load_examples (default: <data_dir>/manual/<name>), or as download_config="
               "tfds.download.DownloadConfig(manual_dir=...) of download_and_prepare.")


def missing_error(what, directory, instructions):
    """The error raised when local files are missing: where they were expected and what
    goes there."""
    listed = instructions.strip("\n")
    return FileNotFoundError(f"{what} not found. Expected directory: {directory}\n"
                             f"Put there:\n{listed}\n{HOW_TO_PASS}")


def manual_dir(dl_manager, what, instructions, relative_paths=()):
    """tfds' manual directory of ``dl_manager`` (a str), checked to hold ``relative_paths``;
    ``missing_error`` when it is missing, empty or lacks one of them."""
    try:
        directory = os.fspath(dl_manager.manual_dir)
    except AssertionError as err:  # tfds: the directory does not exist or is empty.
        directory = getattr(dl_manager, "_manual_dir", None)  # tfds keeps it there
        raise missing_error(what, os.fspath(directory) if directory else f"({err})",
                            instructions) from err
    for rel in relative_paths:
        if not os.path.exists(os.path.join(directory, rel)):
            raise missing_error(f"{what} ({rel})", directory, instructions)
    return directory


@dataclasses.dataclass(frozen=True)
class Pair:
    """One example to prepare: ``read_image()`` -> the image file's bytes, ``read_mask()``
    -> uint8 ``[H, W]`` labels (already in the stored label space)."""
    key: str
    image_name: str
    mask_name: str
    read_image: object
    read_mask: object


def read_label_png(data, name):
    """uint8 ``[H, W]`` class indices of a single-channel PNG's bytes (greyscale: the grey
    level; palette: the index). Raises ``ValueError`` naming ``name`` otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            array = np.asarray(img)
    except Exception as err:  # Pillow raises many types for foreign or truncated bytes.
        raise ValueError(f"Mask {name} cannot be decoded ({type(err).__name__}: {err}).") \
            from err
    if mode not in ("L", "P") or array.ndim != 2:
        raise ValueError(
            f"Mask {name} has image mode {mode!r} (shape {array.shape}): masks must be "
            "single-channel 8-bit PNGs of class indices (mode 'L' greyscale or 'P' palette), "
            "255 for ignored pixels. Convert an RGB colour mask to indices first.")
    return array.astype(np.uint8)


def rgb_image_bytes(data, name):
    """``(bytes to store, (height, width))``: the file's own bytes when it is an RGB JPEG or
    PNG, else the image converted to RGB and encoded as PNG. Raises ``ValueError`` naming
    ``name`` when the bytes do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size = (img.height, img.width)
            if img.mode == "RGB" and img.format in PASSTHROUGH_FORMATS:
                return data, size
            return png_bytes(np.asarray(img.convert("RGB"))), size
    except Exception as err:  # Pillow raises many types for foreign or truncated bytes.
        raise ValueError(f"Image {name} cannot be decoded ({type(err).__name__}: {err}); "
                         "replace or remove it (and its mask).") from err


def png_bytes(array):
    """PNG encoding of a uint8 ``[H, W]`` or ``[H, W, 3]`` array."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def check_labels(mask, num_classes, mask_name, ignore_label=IGNORE_LABEL):
    """Raises ``ValueError`` naming ``mask_name`` when a label is neither in
    ``0..num_classes - 1`` nor ``ignore_label`` (no check when ``num_classes`` is None)."""
    if num_classes is None:
        return
    values = np.unique(mask)
    bad = values[(values >= num_classes) & (values != ignore_label)]
    if bad.size:
        raise ValueError(
            f"Mask {mask_name} has label(s) {bad.tolist()[:10]} outside the "
            f"{num_classes} classes 0..{num_classes - 1} (and not the ignore label "
            f"{ignore_label}). Fix the mask, or list every class (one name per line, label "
            f"= line) in {CLASSES_FILE}.")


class MaskedImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the segmentation builders: subclasses give ``class_names()`` (None: from the
    masks) and ``_split_generators`` returning ``self._pairs_split({split: [Pair]})``;
    ``TRAIN_SPLIT`` / ``TEST_SPLIT`` are the splits trained and evaluated on."""

    TRAIN_SPLIT = "train"
    TEST_SPLIT = "validation"
    IGNORE_LABEL = IGNORE_LABEL

    def class_names(self):
        """The class names (label = position), or None when they come from the masks."""
        raise NotImplementedError

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, **options):
        """``tfds.builder`` keywords for the pipeline's options (none by default)."""
        del data_dir, manual_dir  # The manual directory is given when preparing.
        if options:
            raise ValueError(f"{cls.name} takes no option, got {sorted(options)}.")
        return {}

    def download_and_prepare(self, *, download_config=None, **kwargs):
        """tfds' ``download_and_prepare``; remembers the manual directory for the log line."""
        self._local_files = download_config.manual_dir if download_config else None
        return super().download_and_prepare(download_config=download_config, **kwargs)

    def _config_name(self):
        return self.builder_config.name if self.builder_config else "no config"

    def _log_download_bytes(self):
        logging.info("Preparing %s (%s) from %s (local files, nothing is downloaded) into %s",
                     self.name, self._config_name(),
                     os.fspath(self._local_files) if self._local_files else "local files",
                     self.data_dir)

    def _log_download_done(self):
        logging.info("Prepared %s (%s) into %s; later loads reuse it.", self.name,
                     self._config_name(), self.data_dir)

    def _info(self):
        names = self.class_names()
        metadata = tfds.core.MetadataDict(ignore_label=self.IGNORE_LABEL)
        if names is not None:
            metadata.update(class_names=list(names), num_classes=len(names))
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "mask": tfds.features.Image(shape=(None, None, 1)),
                "image/filename": tfds.features.Text(),
            }),
            metadata=metadata,
        )

    def _encode(self, pair):
        """The stored example of ``pair``, after the checks of the module docstring."""
        image, (height, width) = rgb_image_bytes(pair.read_image(), pair.image_name)
        mask = np.asarray(pair.read_mask())
        if mask.shape != (height, width):
            raise ValueError(
                f"Mask {pair.mask_name} is {mask.shape[0]}x{mask.shape[1]} (height x width) "
                f"but its image {pair.image_name} is {height}x{width}: a mask must have its "
                "image's size.")
        names = self.class_names()
        check_labels(mask, None if names is None else len(names), pair.mask_name,
                     self.IGNORE_LABEL)
        labels = np.unique(mask)
        return ({"image": image, "mask": png_bytes(mask), "image/filename": pair.image_name},
                labels[labels != self.IGNORE_LABEL])

    def _generate_examples(self, pairs, split_name):
        """Yields the stored examples of ``pairs`` (decoded and checked on a few threads);
        records the largest label and logs the split's count."""
        largest, stored = -1, 0
        for key, (example, labels) in ordered_map(lambda p: (p.key, self._encode(p)), pairs):
            if labels.size:
                largest = max(largest, int(labels.max()))
            stored += 1
            yield key, example
        seen = self.info.metadata.setdefault("largest_label", {})
        seen[split_name] = largest
        if self.class_names() is None:
            num_classes = max(seen.values()) + 1
            self.info.metadata.update(
                num_classes=num_classes, class_names=[f"class_{i}" for i in range(num_classes)])
        logging.info("[%s] split %s: %d image/mask pair(s) stored", self.name, split_name,
                     stored)

    def _pairs_split(self, pairs_by_split):
        """``{split: [Pair]}`` -> the dict of generators tfds expects."""
        return {split: self._generate_examples(pairs, split)
                for split, pairs in pairs_by_split.items()}


# ---------------------------------------------------------------------------------------
# The user's folders.


@dataclasses.dataclass(frozen=True)
class PairTree:
    """A listed ``<root>/<split>/{images,masks}`` tree: ``files[split]`` is a sorted list
    of ``(name, image file, mask file, image size, image mtime_ns, mask size, mask
    mtime_ns)``; ``classes``: the lines of ``classes.txt`` (None without it)."""
    root: str
    files: dict
    classes: tuple
    left_out: dict

    def fingerprint(self):
        text = json.dumps({"files": self.files, "classes": self.classes}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_DIGITS]


def _list_folder(directory, extensions, left_out):
    """``{stem: entry}`` of the files of ``directory`` with one of ``extensions``; hidden
    and other files go to ``left_out`` (paths), stems seen twice are returned apart."""
    by_stem, twice = {}, collections.defaultdict(list)
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_file() \
                    or not entry.name.lower().endswith(extensions):
                left_out.append(entry.path)
                continue
            stem = os.path.splitext(entry.name)[0]
            if stem in by_stem:
                twice[stem] += [by_stem[stem].name] if not twice[stem] else []
                twice[stem].append(entry.name)
            else:
                by_stem[stem] = entry
    return by_stem, dict(twice)


def read_classes(root):
    """The class names of ``<root>/classes.txt`` (non-empty lines, stripped), or None."""
    path = os.path.join(root, CLASSES_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        names = tuple(line.strip() for line in f if line.strip())
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{path} must list distinct class names, one per line (label = "
                         f"line), got {list(names)}.")
    return names


def scan_pairs(root):
    """Lists the tree ``root`` (module docstring) into a ``PairTree``.

    Raises ``FileNotFoundError`` (with the layout) when ``train/images`` or ``train/masks``
    is missing, and ``ValueError`` naming unpaired files and repeated names.
    """
    if not root or not os.path.isdir(root):
        raise missing_error("Segmentation folders", root, INSTRUCTIONS)
    for rel in ("train/images", "train/masks"):
        if not os.path.isdir(os.path.join(root, rel)):
            raise missing_error(f"Segmentation folders ({rel})", root, INSTRUCTIONS)
    files, left_out, problems = {}, {}, []
    for split in SPLITS:
        images_dir, masks_dir = (os.path.join(root, split, d) for d in ("images", "masks"))
        if not os.path.isdir(os.path.join(root, split)):
            continue
        if not (os.path.isdir(images_dir) and os.path.isdir(masks_dir)):
            problems.append(f"{os.path.join(root, split)}: needs both images/ and masks/")
            continue
        left_out[split] = []
        images, images_twice = _list_folder(images_dir, IMAGE_EXTENSIONS, left_out[split])
        masks, masks_twice = _list_folder(masks_dir, MASK_EXTENSIONS, left_out[split])
        for stem, names in {**images_twice, **masks_twice}.items():
            folder = images_dir if stem in images_twice else masks_dir
            problems.append(f"{folder}: {len(names)} files named {stem!r} ({', '.join(names)})")
        problems += [f"{images[s].path}: no mask {os.path.join(masks_dir, s)}.png"
                     for s in sorted(set(images) - set(masks))]
        problems += [f"{masks[s].path}: no image {os.path.join(images_dir, s)}.<ext>"
                     for s in sorted(set(masks) - set(images))]
        if not images and not masks:
            problems.append(f"{images_dir}: no image")
        rows = []
        for stem in sorted(set(images) & set(masks)):
            i, m = images[stem].stat(), masks[stem].stat()
            rows.append((stem, images[stem].name, masks[stem].name, i.st_size, i.st_mtime_ns,
                         m.st_size, m.st_mtime_ns))
        files[split] = rows
    if problems:
        raise ValueError(
            f"Segmentation folders {root}: {len(problems)} problem(s):\n{listing(problems)}\n"
            f"Every image needs a mask of the same name (and the reverse). Layout:"
            f"{INSTRUCTIONS}")
    for split, paths in left_out.items():
        if paths:
            logging.warning("[segmentation_folders] split %s: left out %d file(s) (hidden, "
                            "or not an image / not a .png mask), e.g. %s", split, len(paths),
                            paths[0])
    return PairTree(root, files, read_classes(root), {s: len(p) for s, p in left_out.items()})


class SegmentationFolders(MaskedImageBuilder):
    """A user's ``split/{images,masks}`` tree (module docstring), keyed by its fingerprint."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    TEST_SPLIT = "test"

    def __init__(self, *, root, dataset_name=None, **kwargs):
        """Lists ``root`` (``scan_pairs``); prepare with ``root`` as the manual directory.
        ``dataset_name`` (default: the folder's name) starts the config name."""
        root = os.path.expanduser(root)
        self._tree = scan_pairs(root)
        name = dataset_name or os.path.basename(os.path.normpath(root))
        config = tfds.core.BuilderConfig(name=f"{name}_{self._tree.fingerprint()}",
                                         version="1.0.0")
        super().__init__(config=config, **kwargs)

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, dataset_name=None):
        del data_dir  # The tree is the manual directory.
        if not manual_dir:
            raise ValueError("segmentation_folders needs manual_dir=<root with train/images/ "
                             f"and train/masks/>.{INSTRUCTIONS}")
        return {"root": manual_dir, "dataset_name": dataset_name}

    def class_names(self):
        return self._tree.classes

    def _split_generators(self, dl_manager):
        root = manual_dir(dl_manager, "Segmentation folders", INSTRUCTIONS, MANUAL_PATHS)
        tree = scan_pairs(root)
        if (tree.files, tree.classes) != (self._tree.files, self._tree.classes):
            raise ValueError(
                f"The tree {root} (the manual directory) is not the tree {self._tree.root} "
                "this builder was made for, or files changed since it was listed. Make the "
                "builder again (SegmentationFolders(root=<tree>)) and prepare it with that "
                f"tree as manual_dir. {HOW_TO_PASS}")

        def pair(split, row):
            stem, image, mask = row[:3]
            image_path = os.path.join(root, split, "images", image)
            mask_path = os.path.join(root, split, "masks", mask)
            read_mask = file_reader(mask_path)
            return Pair(key=stem, image_name=f"{split}/images/{image}",
                        mask_name=f"{split}/masks/{mask}", read_image=file_reader(image_path),
                        read_mask=lambda: read_label_png(read_mask(), mask_path))

        return self._pairs_split({split: [pair(split, row) for row in rows]
                                  for split, rows in tree.files.items()})
