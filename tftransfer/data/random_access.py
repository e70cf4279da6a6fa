"""A random-access copy of a prepared split and the stateless training stream read from it.

tfds' prepared store is TFRecord shards, read in sequence: its training stream
(``shuffle_files`` + a shuffle buffer) holds state, so resuming at batch ``k`` meant
replaying (decoding and augmenting) ``k`` batches. Here the split is copied once, beside
the store (``<builder.data_dir>/<split>.random_access.{uint8,npz}``), as one flat uint8
file of the images in stored order (memory-mapped when read) and an index: the byte offset
and shape of each image, its label and ``tfds_id``. Training then follows
:mod:`tftransfer.data.stream`: epoch ``e`` visits the kept examples in the order
``stateless_shuffle(range(m), [seed, e])``, the example at stream position ``p`` is read
(one ``tf.numpy_function`` gather of the map per batch when the images share one
shape; one slice per example otherwise, so ``keep_aspect`` stores work), zero
padded by ``pad`` and augmented with the seed ``[seed, p]`` (crop, mirror, jitter, mean:
:func:`tftransfer.data.stream.augment`), then batched.
Starting at batch ``k`` costs the same for every ``k``, and the draws are those of the
in-memory stream, so both paths resume alike.

Why this copy (``benchmarks/bench_resume.py`` times the first batch at k = 100 and 5000 and
the throughput against the one-pass TFRecord pipeline): the other ways to an O(1) resume
were a checkpointed tf.data iterator (a 2048-image shuffle
buffer makes each checkpoint ~400 MB, and Keras' ``fit`` owns the iterator), tf.data's
global shuffle (needs a random-access source: TFRecord is not one) and re-preparing the
store as tfds ``array_record`` (``builder.as_data_source()``; re-prepares every existing
store and ties training to tfds' decoding per example). The flat file needs only NumPy,
works on stores already prepared, and reading an image is a memory copy. Cost: the split's
pixels a second time on disk (the store's own encoding is uncompressed uint8 as well).
"""
import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data import preprocessing, stream
from tftransfer.io_utils import atomic_path

SUFFIX = ".random_access"


def paths(builder, split):
    """``(pixels, index)`` file paths of ``split``'s copy beside ``builder``'s store."""
    base = os.path.join(builder.data_dir, f"{split}{SUFFIX}")
    return base + ".uint8", base + ".npz"


@dataclasses.dataclass(frozen=True)
class Store:
    """A split in stored order: ``pixels`` (flat uint8, memory-mapped), ``offsets`` (int64
    ``[n + 1]``: image ``i`` is ``pixels[offsets[i]:offsets[i + 1]]``), ``shapes`` (int64
    ``[n, 3]``), ``labels`` (int64 ``[n]``) and ``ids`` (the ``tfds_id`` of each, bytes)."""
    pixels: np.ndarray
    offsets: np.ndarray
    shapes: np.ndarray
    labels: np.ndarray
    ids: np.ndarray

    def __len__(self):
        return len(self.labels)

    def image(self, i):
        """The stored uint8 image ``i`` ``[h, w, 3]`` (a copy out of the map)."""
        i = int(i)
        return np.array(self.pixels[self.offsets[i]:self.offsets[i + 1]]).reshape(
            self.shapes[i])

    def images(self, indices):
        """The stored uint8 images ``indices`` ``[k, h, w, 3]`` of a store whose images share
        one shape (:meth:`fixed_shape`): one gather out of the map."""
        view = self.pixels.reshape((len(self),) + self.fixed_shape())
        return np.take(view, np.asarray(indices, np.int64), axis=0)

    def fixed_shape(self):
        """The common image shape, or ``(None, None, 3)`` when sizes differ."""
        if len(self) and (self.shapes == self.shapes[0]).all():
            return tuple(int(v) for v in self.shapes[0])
        return (None, None, 3)

    def indices(self, ids):
        """Stored positions of the examples ``ids`` (``tfds_id``s, in that order)."""
        where = {key: i for i, key in enumerate(self.ids)}
        missing = [key for key in ids if key not in where]
        if missing:
            raise ValueError(f"{len(missing)} selected example(s) (e.g. {missing[0]!r}) are "
                             "not in the random-access copy of the split: delete its "
                             f"{SUFFIX}.* files beside the store to write it anew.")
        return np.array([where[key] for key in ids], np.int64)


def write(builder, split):
    """Copies ``split`` of the prepared ``builder`` (stored order) into its flat file and
    index (module docstring), each written under a temporary name and renamed: the index,
    renamed last, marks a complete copy."""
    pixels_path, index_path = paths(builder, split)
    ds = builder.as_dataset(split, shuffle_files=False,
                            read_config=tfds.ReadConfig(add_tfds_id=True),
                            decoders={"image/filename": tfds.decode.SkipDecoding()})
    shapes, labels, ids = [], [], []
    logging.info("Writing the random-access copy of %s %s to %s (once)", builder.name, split,
                 pixels_path)
    with atomic_path(pixels_path) as tmp, open(tmp, "wb") as f:
        for example in ds.as_numpy_iterator():
            f.write(np.ascontiguousarray(example["image"], np.uint8).tobytes())
            shapes.append(example["image"].shape)
            labels.append(example["label"])
            ids.append(example["tfds_id"])
    shapes = np.array(shapes, np.int64).reshape(-1, 3)
    offsets = np.concatenate([[0], np.cumsum(np.prod(shapes, axis=1))]).astype(np.int64)
    with atomic_path(index_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, offsets=offsets, shapes=shapes, labels=np.array(labels, np.int64),
                     ids=np.array(ids, dtype=object).astype(bytes))


def open_store(builder, split):
    """The :class:`Store` of ``split``, written first when absent."""
    pixels_path, index_path = paths(builder, split)
    if not os.path.exists(index_path):
        write(builder, split)
    with np.load(index_path) as index:
        offsets, shapes = index["offsets"], index["shapes"]
        labels, ids = index["labels"], index["ids"]
    size = os.path.getsize(pixels_path)
    if size != offsets[-1]:
        raise ValueError(f"{pixels_path} holds {size} bytes, its index {index_path} "
                         f"{offsets[-1]}: delete both to write them anew.")
    pixels = (np.memmap(pixels_path, np.uint8, mode="r") if size
              else np.zeros([0], np.uint8))
    return Store(pixels, offsets, shapes, labels, ids)


def stream_batches(store, batch_size, crop, mean, seed, indices=None, labels=None,
                   ranges=preprocessing.JitterRanges(), jitter=True, mirror=True, pad=0,
                   start_batch=0):
    """Infinite augmented ``(float32 [B, crop, crop, 3], int64 [B])`` batches of ``store``'s
    examples ``indices`` (default all) with ``labels`` (default the stored ones), from
    batch ``start_batch`` on (module docstring)."""
    indices = np.arange(len(store), dtype=np.int64) if indices is None else indices
    labels = store.labels[indices] if labels is None else np.asarray(labels, np.int64)
    shape = store.fixed_shape()
    kept, kept_labels = tf.constant(indices, tf.int64), tf.constant(labels, tf.int64)

    def augmented(position, image, label):
        image = preprocessing.zero_pad(image, pad)
        return stream.augment(image, position, seed, crop, mean, jitter, mirror, ranges), label

    ds = stream.positions(len(indices), seed, batch_size, start_batch)
    if None in shape:  # images of different sizes: read one at a time
        def read(position, k):
            image = tf.numpy_function(store.image, [tf.gather(kept, k)], tf.uint8,
                                      stateful=False)
            return position, tf.ensure_shape(image, shape), tf.gather(kept_labels, k)
    else:  # one gather per batch out of the map, then augmented per example
        def read(position, k):
            images = tf.numpy_function(store.images, [tf.gather(kept, k)], tf.uint8,
                                       stateful=False)
            return position, tf.ensure_shape(images, (None,) + shape), tf.gather(kept_labels, k)
        ds = ds.batch(batch_size)
    ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if None not in shape:
        ds = ds.unbatch()
    ds = ds.map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
