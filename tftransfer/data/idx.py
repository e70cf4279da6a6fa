"""Reader for the IDX format of MNIST and Fashion-MNIST (``*-idx3-ubyte[.gz]``).

Layout (big-endian): two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions ``n``, ``n`` uint32
sizes, then the values in C order. A damaged file (bad header, wrong length, truncated or
corrupt gzip stream) raises ``IdxFormatError`` naming it.
"""
import gzip
import os
import zlib

import numpy as np

_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
# File stems of the MNIST family, per split.
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


class IdxFormatError(ValueError):
    """A file is not a valid IDX file."""


def _read_bytes(path):
    """The bytes of ``path``, gunzipped when it ends in ``.gz``; ``IdxFormatError`` naming
    the file when its gzip stream is truncated or corrupt."""
    if not path.endswith(".gz"):
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise IdxFormatError(f"{path} is truncated or corrupt: its gzip stream cannot be read "
                             f"({type(err).__name__}: {err}). Replace it with a complete "
                             "copy.") from err


def read_idx(path):
    """Returns the array stored in the IDX file ``path`` (gzip-compressed or not)."""
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise IdxFormatError(f"{path} is not an IDX file (bad magic number "
                             f"{data[:4].hex() or 'empty'}); expected 0000 + type + ndim.")
    dtype, ndim = _DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data[4:header], dtype=">u4"))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise IdxFormatError(f"{path} holds {len(data)} bytes but its header {shape} of "
                             f"{dtype} needs {expected}: the file is truncated or corrupt.")
    return np.frombuffer(data[header:], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_file(directory, split, kind):
    """Path of ``{prefix}-{kind}-idx?-ubyte[.gz]`` in ``directory``, or None.

    ``kind`` is "images" (idx3) or "labels" (idx1).
    """
    ndim = 3 if kind == "images" else 1
    stem = f"{SPLIT_PREFIX[split]}-{kind}-idx{ndim}-ubyte"
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def has_split(directory, split):
    """Whether ``directory`` holds both IDX files of ``split``."""
    return all(find_idx_file(directory, split, kind) for kind in ("images", "labels"))


def load_split(directory, split):
    """``(images uint8 [N, H, W], labels int64 [N])`` of ``split`` ("train"/"test")."""
    if split not in SPLIT_PREFIX:
        raise ValueError(f"split must be one of {sorted(SPLIT_PREFIX)}, got {split!r}.")
    paths = {kind: find_idx_file(directory, split, kind) for kind in ("images", "labels")}
    missing = [kind for kind, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(f"{directory} has no {split} {' or '.join(missing)} IDX file "
                                f"(expected {SPLIT_PREFIX[split]}-images-idx3-ubyte[.gz] and "
                                f"{SPLIT_PREFIX[split]}-labels-idx1-ubyte[.gz]).")
    images, labels = read_idx(paths["images"]), read_idx(paths["labels"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IdxFormatError(f"{directory}: {split} images {images.shape} and labels "
                             f"{labels.shape} do not pair up (expected [N, H, W] and [N]).")
    return images, labels.astype(np.int64)
