"""The one "data to batches" helper of the library (Fisher, features, analyses).

``data`` may be a ``tf.data.Dataset`` of batches ``x``, ``(x,)``, ``(x, y)`` or
``(x, y, w)``; a tuple ``(x, y)`` of arrays; or an array ``x``. Arrays are cut into
``batch_size`` rows in order; a dataset is taken batch by batch as it is.
"""
from typing import Any, Iterator, Optional, Tuple

import numpy as np
import tensorflow as tf


def _split(data):
    if isinstance(data, dict):
        raise TypeError("pass an input array, an (x, y) tuple of arrays or a tf.data.Dataset "
                        "of batches; got a dict.")
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"a tuple of arrays must be (x, y), got {len(data)} items.")
        x, y = np.asarray(data[0]), (None if data[1] is None else np.asarray(data[1]))
        if y is not None and len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels.")
        return x, y
    return np.asarray(data), None


def batches(data: Any, batch_size: int = 128) -> Iterator[Tuple[tf.Tensor, Optional[tf.Tensor]]]:
    """Yields ``(x, y)`` tensors, ``y`` None when ``data`` carries no labels."""
    if isinstance(data, tf.data.Dataset):
        for element in data:
            if isinstance(element, (tuple, list)):
                yield element[0], (element[1] if len(element) > 1 else None)
            else:
                yield element, None
        return
    x, y = _split(data)
    for start in range(0, len(x), batch_size):
        stop = start + batch_size
        yield (tf.convert_to_tensor(x[start:stop]),
               None if y is None else tf.convert_to_tensor(y[start:stop]))


def labelled_batches(data: Any, batch_size: int = 128) -> Iterator[Tuple[tf.Tensor, tf.Tensor]]:
    """Like :func:`batches`, failing clearly when the data carries no labels."""
    for x, y in batches(data, batch_size):
        if y is None:
            raise ValueError("labels are needed: pass (x, y) arrays or a dataset of (x, y) "
                             "batches.")
        yield x, y


def input_batches(data: Any, batch_size: int = 128) -> Iterator[tf.Tensor]:
    """Yields the input tensors ``x`` only (labels, if any, are dropped)."""
    for x, _ in batches(data, batch_size):
        yield x


def num_batches(data: Any, batch_size: int = 128) -> Optional[int]:
    """Number of batches :func:`batches` yields, or None when a dataset does not know it."""
    if isinstance(data, tf.data.Dataset):
        cardinality = int(data.cardinality())
        return cardinality if cardinality >= 0 else None
    x, _ = _split(data)
    return -(-len(x) // batch_size)
