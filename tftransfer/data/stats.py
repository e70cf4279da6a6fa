"""Per-channel mean of a prepared training split, stored with the dataset.

``mean_c = sum over images and pixels of x_c / total number of pixels`` (0..255 scale,
on the stored resized images), written as ``channel_mean.json`` in the builder's
versioned data directory and read back by the pipeline (``mean="dataset"``).
"""
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.io_utils import atomic_write_json

MEAN_FILE = "channel_mean.json"


def mean_path(builder):
    """Where the mean of ``builder``'s dataset is stored."""
    return os.path.join(builder.data_dir, MEAN_FILE)


def compute_channel_mean(builder, split="train", log_every=5000):
    """Pixel-weighted RGB mean of ``split``; logs progress every ``log_every`` images."""
    ds = builder.as_dataset(split, as_supervised=True).map(
        lambda image, label: (tf.reduce_sum(tf.cast(image, tf.float64), axis=[0, 1]),
                              tf.cast(tf.shape(image)[0] * tf.shape(image)[1], tf.float64)),
        num_parallel_calls=tf.data.AUTOTUNE)
    total, pixels = np.zeros(3), 0.0
    for count, (sums, n) in enumerate(ds.as_numpy_iterator(), start=1):
        total += sums
        pixels += n
        if count % log_every == 0:
            logging.info("[compute_mean] %d images, running mean %s", count, total / pixels)
    if pixels == 0:
        raise ValueError(f"Split {split!r} of {builder.name} is empty: no mean to compute.")
    return tuple(float(v) for v in total / pixels)


def store_channel_mean(builder, split="train"):
    """Computes the mean of ``split`` and writes it next to the data; returns it."""
    mean = compute_channel_mean(builder, split)
    atomic_write_json(mean_path(builder), {"split": split, "rgb_mean": list(mean)})
    return mean


def load_channel_mean(builder):
    """The stored mean, or None when it was never computed."""
    path = mean_path(builder)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return tuple(json.load(f)["rgb_mean"])
