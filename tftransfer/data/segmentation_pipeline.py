"""Semantic-segmentation datasets as ``tf.data``: examples, training and evaluation batches.

``load_examples(name, split, data_dir, manual_dir=None)`` prepares the dataset once (its
tfds builder stores images and label masks under ``data_dir``) and returns
``SegmentationExamples``: a finite ``tf.data.Dataset`` of ``{"image": uint8 [H, W, 3],
"mask": uint8 [H, W]}`` in stored order (255 = ignore), with the counts and class names.
Names (``SEGMENTATION_DATASETS``): ``cityscapes`` (19 classes; splits ``train``,
``validation``), ``sbd`` (21 classes; ``train`` = train_aug, ``validation`` = VOC 2012 val)
and ``segmentation_folders`` (a user's tree; ``train``, ``validation``, ``test`` as
present). ``manual_dir`` defaults to ``<data_dir>/manual/<name>`` (the tree itself for
``segmentation_folders``, which needs it).

``train_batches`` is an infinite stream of augmented crops that is a pure function of
``seed`` (as :func:`tftransfer.training.data.stateless_batches`): epoch ``e`` reads the
examples in stored order through a shuffle buffer seeded from ``[seed, e]``, and the example
at stream position ``p`` is transformed (:mod:`tftransfer.data.segmentation_transforms`)
with the seed ``[seed, p]``; a run that restarts and skips the batches it consumed, and
every replica of a distributed run, sees the same batches. ``eval_batches`` gives whole
images in stored order.
"""
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import tftransfer.data.builders  # noqa: F401  Registers the builders with tfds.
from tftransfer.data import preprocessing, stats
from tftransfer.data import segmentation_transforms as transforms
from tftransfer.io_utils import atomic_write_json

IGNORE_LABEL = transforms.IGNORE_LABEL
# Pipeline name -> tfds builder name.
SEGMENTATION_BUILDERS = {
    "cityscapes": "cityscapes_train_ids",
    "sbd": "sbd_voc_aug",
    "segmentation_folders": "segmentation_folders",
}
SEGMENTATION_DATASETS = tuple(SEGMENTATION_BUILDERS)
DEFAULT_SHUFFLE_BUFFER = 64


@dataclasses.dataclass
class SegmentationExamples:
    """What ``load_examples`` returns; ``builder`` is the prepared tfds builder."""
    dataset: tf.data.Dataset
    num_examples: int
    num_classes: int
    class_names: list
    split: str = "train"
    builder: object = None


def _tfds_name(name):
    if name not in SEGMENTATION_BUILDERS:
        raise ValueError(f"Unknown segmentation dataset {name!r}; choose one of "
                         f"{list(SEGMENTATION_DATASETS)}.")
    return SEGMENTATION_BUILDERS[name]


def default_manual_dir(data_dir, name):
    """Where the downloaded files are looked for when no ``manual_dir`` is given."""
    return os.path.join(data_dir, "manual", name)


def get_builder(name, data_dir, manual_dir=None, **options):
    """The (possibly unprepared) tfds builder of ``name`` (``segmentation_folders`` lists
    ``manual_dir`` here; ``dataset_name=`` names it)."""
    tfds_name = _tfds_name(name)
    data_dir = os.path.expanduser(data_dir)
    kwargs = tfds.builder_cls(tfds_name).builder_kwargs(
        data_dir=data_dir, manual_dir=manual_dir, **options)
    return tfds.builder(tfds_name, data_dir=data_dir, **kwargs)


def prepare(name, data_dir, manual_dir=None, **options):
    """Stores the dataset once from the files in ``manual_dir``; returns the builder."""
    data_dir = os.path.expanduser(data_dir)
    if name != "segmentation_folders":
        manual_dir = manual_dir or default_manual_dir(data_dir, name)
    builder = get_builder(name, data_dir, manual_dir, **options)
    if not builder.is_prepared():
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=os.path.expanduser(manual_dir), try_download_gcs=False))
    return builder


def _squeeze_mask(example):
    return {"image": example["image"], "mask": example["mask"][..., 0]}


def load_examples(name, split, data_dir, manual_dir=None, **options):
    """``SegmentationExamples`` of ``split`` of ``name`` (module docstring), prepared first
    when needed. Raises ``ValueError`` naming the prepared splits when ``split`` is not one."""
    builder = prepare(name, data_dir, manual_dir, **options)
    splits = builder.info.splits
    if split not in splits:
        raise ValueError(f"Dataset {name} has no split {split!r}; its splits are "
                         f"{sorted(splits)} (train on {builder.TRAIN_SPLIT!r}, evaluate on "
                         f"{builder.TEST_SPLIT!r}).")
    dataset = builder.as_dataset(split, shuffle_files=False).map(
        _squeeze_mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    meta = builder.info.metadata
    return SegmentationExamples(dataset, splits[split].num_examples, int(meta["num_classes"]),
                                list(meta["class_names"]), split, builder)


def compute_channel_mean(dataset):
    """Pixel-weighted RGB mean ``sum x_c / number of pixels`` (0..255) of the images of
    ``dataset`` (``load_examples(...).dataset``)."""
    sums = dataset.map(
        lambda ex: (tf.reduce_sum(tf.cast(ex["image"], tf.float64), axis=[0, 1]),
                    tf.cast(tf.shape(ex["image"])[0] * tf.shape(ex["image"])[1], tf.float64)),
        num_parallel_calls=tf.data.AUTOTUNE)
    total, pixels = np.zeros(3), 0.0
    for image_sum, count in sums.as_numpy_iterator():
        total += image_sum
        pixels += count
    if not pixels:
        raise ValueError("No image to average: the examples are empty.")
    return tuple(float(v) for v in total / pixels)


def channel_mean(examples):
    """The RGB mean of ``examples`` (``SegmentationExamples``), computed once and stored
    as ``channel_mean.json`` next to its prepared data (as :mod:`tftransfer.data.stats`
    does for the classification datasets); a mean stored for another split is recomputed."""
    stored = stats.load_channel_mean(examples.builder)
    path = stats.mean_path(examples.builder)
    if stored is not None:
        with open(path, encoding="utf-8") as f:
            if json.load(f).get("split") == examples.split:
                return stored
    mean = compute_channel_mean(examples.dataset)
    atomic_write_json(path, {"split": examples.split, "rgb_mean": list(mean)})
    return mean


def _epoch_seed(seed, epoch):
    """The shuffle seed of ``epoch``: a stateless int64 draw from ``[seed, epoch]``."""
    return tf.random.stateless_uniform([], tf.stack([tf.constant(seed, tf.int64), epoch]),
                                       minval=None, maxval=None, dtype=tf.int64)


def _check_examples(examples):
    if not isinstance(examples, tf.data.Dataset):
        raise TypeError("train_batches / eval_batches take the tf.data.Dataset of "
                        "load_examples(...).dataset, got "
                        f"{type(examples).__name__}.")
    if int(examples.cardinality()) == 0:
        raise ValueError("The examples dataset is empty: nothing to train or evaluate on.")
    spec = examples.element_spec
    if not (isinstance(spec, dict) and {"image", "mask"} <= set(spec)):
        raise ValueError("Examples must be dicts with 'image' [H, W, 3] and 'mask' [H, W] "
                         f"(load_examples(...).dataset); got {spec}.")


def train_batches(examples, batch_size, crop_size, scale=None, mirror=True,
                  color_jitter=False, ignore_label=IGNORE_LABEL, fill=0.0, seed=0,
                  shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, jitter=preprocessing.JitterRanges()):
    """Infinite ``(float32 [B, h, w, 3] in [0, 255], int32 [B, h, w])`` batches (full batches
    only) of ``examples`` (``load_examples(...).dataset``): the stream of the module
    docstring, each example transformed by ``segmentation_transforms.train_transform``
    (random ``scale``, colour jitter, padding with ``fill`` / ``ignore_label``, crop,
    ``mirror``). ``shuffle_buffer`` decoded examples are held in memory."""
    _check_examples(examples)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    crop = transforms.crop_hw(crop_size)
    scale = transforms.check_scale(scale)

    def epoch(e):
        return examples.shuffle(shuffle_buffer, seed=_epoch_seed(seed, e),
                                reshuffle_each_iteration=False)

    def example(position, ex):
        return transforms.train_transform(
            ex["image"], ex["mask"], tf.stack([tf.constant(seed, tf.int64), position]), crop,
            scale, mirror, color_jitter, ignore_label, fill, jitter)

    ds = tf.data.Dataset.range(2 ** 62).flat_map(epoch).enumerate()
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_batches(examples, batch_size=1):
    """Finite ``(float32 [B, H, W, 3], int32 [B, H, W])`` batches of whole images in stored
    order (the last batch may be smaller). ``batch_size > 1`` needs images of one size
    (Cityscapes: 1024x2048); datasets of mixed sizes (SBD) take ``batch_size=1``."""
    _check_examples(examples)
    return examples.map(
        lambda ex: (tf.cast(ex["image"], tf.float32), tf.cast(ex["mask"], tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    ).batch(batch_size).prefetch(tf.data.AUTOTUNE)
