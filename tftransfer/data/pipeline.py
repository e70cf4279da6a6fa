"""One call from a dataset name to training and test ``tf.data.Dataset``s.

``load_datasets(name, data_dir, manual_dir=...)`` prepares the dataset once (decoded,
resized, stored as uint8 by its tfds builder) when it is not prepared yet, then returns
``Datasets(train, test, ...)``: train yields ``(float32 [B, crop, crop, 3], int64 [B])``
with random crop / mirror / colour jitter and full batches only; test yields central
crops ``[B, crop, crop, 3]`` or ten crops ``[B, 10, crop, crop, 3]`` (average their
predictions with ``tftransfer.data.evaluation``). Inputs are mean-subtracted with the
dataset's stored training mean (``mean="dataset"``, computed and stored on first use),
ImageNet's (``mean="imagenet"``) or a given RGB triple. With ``seed`` set, file order,
shuffling and augmentation are deterministic. ``repeat_train=True``: the endless stateless
stream of :mod:`tftransfer.data.random_access` (a pure function of ``seed``), and
``Datasets.train_from(k)`` the same stream from batch ``k`` on, reading none before. A dataset without its test split (a
``class_folders`` tree without ``test/``) raises ``ValueError`` saying so, unless
``require_test=False`` (then ``test`` is None and ``num_test`` 0).

Selection, for every dataset (``tftransfer.data.selection``, rule in
``tftransfer.data.subsets``), from the labels of the training split only: ``classes``
(kept and relabelled in that order, the test split restricted to them),
``examples_per_class``, then ``validation_fraction`` or ``folds``/``fold`` held out of
training, drawn with ``split_seed``. ``evaluate_on="validation"`` makes ``test`` the
held-out images (test transform) and never opens the test split. With no selection
option the stored splits are read exactly as before. Augmentation: ``mirror``, ``pad``,
``color_jitter`` (defaults: the paper's, Li et al. 2018, Section 4.1: mirror and jitter
on, no padding).

Names (``DATASET_NAMES``): caltech256_30, caltech256_60, mit_indoor67, stanford_dogs120,
food101, imagenet2012, places365_small, class_folders (a user dataset in class-per-folder
layout). Each is a tfds builder registered by ``tftransfer.data.builders`` with a config:
``get_builder`` is ``tfds.builder(<tfds name>, data_dir=..., config=...)``, and
``prepare`` gives ``manual_dir`` to tfds as
``download_config=tfds.download.DownloadConfig(manual_dir=...)``.
"""
import dataclasses
import inspect
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import tftransfer.data.builders  # noqa: F401  Registers the builders with tfds.
from tftransfer.data import preprocessing, random_access, selection, stats
from tftransfer.data.builders.tfds_source import SOURCES

# Dataset name -> (tfds builder name, options fixed by the name). The builder class (from
# tfds' registry) turns the options into its config and constructor keywords.
DATASET_NAMES = {
    "caltech256_30": ("caltech256", {"train_per_class": 30}),
    "caltech256_60": ("caltech256", {"train_per_class": 60}),
    "mit_indoor67": ("mit_indoor67", {}),
    "stanford_dogs120": ("stanford_dogs120", {}),
    "class_folders": ("class_folders", {}),
    **{s: ("tfds_source", {"source": s}) for s in SOURCES},
}


def default_manual_dir(data_dir, name):
    """Where local files are looked for when no manual_dir is given."""
    return os.path.join(data_dir, "manual", name)


def _tfds_name(name):
    if name not in DATASET_NAMES:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(DATASET_NAMES)}.")
    return DATASET_NAMES[name]


def get_builder(name, data_dir, manual_dir=None, resize=256, keep_aspect=False, **options):
    """The (possibly unprepared) tfds builder of ``name``; ``options`` (e.g. ``split_seed``,
    ``test_set``, ``imagenet_val_dir``, ``source_data_dir``, ``dataset_name``) choose its
    config and constructor keywords. Only ``class_folders`` reads ``manual_dir`` here."""
    tfds_name, fixed = _tfds_name(name)
    data_dir = os.path.expanduser(data_dir)
    kwargs = tfds.builder_cls(tfds_name).builder_kwargs(
        data_dir=data_dir, manual_dir=manual_dir, resize=resize, keep_aspect=keep_aspect,
        **fixed, **options)
    return tfds.builder(tfds_name, data_dir=data_dir, **kwargs)


def prepare(name, data_dir, manual_dir=None, resize=256, keep_aspect=False, **options):
    """Builds the stored (resized uint8) copy once from the files in ``manual_dir``
    (default ``default_manual_dir``); returns the prepared builder."""
    if name != "class_folders":
        manual_dir = manual_dir or default_manual_dir(os.path.expanduser(data_dir), name)
    builder = get_builder(name, data_dir, manual_dir, resize, keep_aspect, **options)
    if not builder.is_prepared():  # The builder logs what it prepares, from where.
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=os.path.expanduser(manual_dir), try_download_gcs=False))
    return builder


def missing_split_error(builder, split, manual_dir):
    """The ``ValueError`` for a prepared dataset without ``split`` (only a class-per-folder
    tree can lack its test split): what to add, or how to do without it."""
    return ValueError(
        f"Dataset {builder.name} in {manual_dir} has no {split}/ split to evaluate on "
        f"(prepared splits: {sorted(builder.info.splits)}). Add "
        f"{os.path.join(manual_dir, split)}/<class>/<image files> with the class folders of "
        f"train/ (or rename validation/ to {split}/); the tree is then prepared anew. For "
        "training data alone, call load_datasets(..., require_test=False).")


def resolve_mean(builder, mean, split="train"):
    """``"dataset"`` (stored; computed and stored if missing), ``"imagenet"`` or an RGB triple."""
    if mean == "imagenet":
        return preprocessing.IMAGENET_MEAN
    if mean == "dataset":
        stored = stats.load_channel_mean(builder)
        return stored if stored is not None else stats.store_channel_mean(builder, split)
    if len(mean) != 3:
        raise ValueError(f"mean must be 'dataset', 'imagenet' or 3 numbers, got {mean!r}.")
    return tuple(float(m) for m in mean)


def train_dataset(builder, split, batch_size, crop_size, mean, seed=None,
                  jitter=preprocessing.JitterRanges(), color_jitter=True,
                  shuffle_buffer=2048, repeat=False, subset=None, mirror=True, pad=0,
                  start_batch=0):
    """Augmented, batched (full batches) and prefetched training inputs; only the examples
    of ``subset`` (a ``Subset``), relabelled, when given.

    ``repeat=True``: the endless stateless stream of :mod:`tftransfer.data.random_access`
    (read from the split's random-access copy, written once beside the store; ``seed``
    None draws one), from batch ``start_batch`` on without reading the batches before.
    ``repeat=False``: one pass over the TFRecord store, files and a ``shuffle_buffer``
    shuffled anew on each iteration (``start_batch`` must be 0).
    """
    if repeat:
        store = random_access.open_store(builder, split)
        indices = labels = None
        if subset is not None:
            indices, labels = store.indices(subset.ids), subset.labels
        if seed is None:
            seed = int(np.random.default_rng().integers(2 ** 31))
        return random_access.stream_batches(store, batch_size, crop_size, mean, seed,
                                            indices, labels, jitter, color_jitter, mirror,
                                            pad, start_batch)
    if start_batch:
        raise ValueError(f"start_batch={start_batch}: a one-pass training dataset "
                         "(repeat=False) starts at its first batch; use repeat=True.")
    if subset is None:
        ds = builder.as_dataset(split, as_supervised=True, shuffle_files=True,
                                read_config=tfds.ReadConfig(shuffle_seed=seed))
    else:
        ds = subset.select(builder.as_dataset(
            split, shuffle_files=True,
            read_config=tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=True)))
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return preprocessing.augment_batches(ds, batch_size, crop_size, mean, seed, jitter,
                                         color_jitter, mirror=mirror, pad=pad)


def test_dataset(builder, split, batch_size, crop_size, mean, crops="center", subset=None):
    """Mean-subtracted central crops or ten crops, in stored order, batched and prefetched;
    only the examples of ``subset`` (a ``Subset``), relabelled, when given."""
    if subset is None:
        ds = builder.as_dataset(split, as_supervised=True, shuffle_files=False)
    else:
        ds = subset.select(builder.as_dataset(
            split, shuffle_files=False, read_config=tfds.ReadConfig(add_tfds_id=True)))
    ds = ds.map(lambda image, label: (preprocessing.test_transform(image, mean, crop_size,
                                                                   crops), label),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class Datasets:
    """What ``load_datasets`` returns: ``test`` is what to evaluate on, the split named by
    ``eval_split`` (``"test"``, or ``"validation"``: the held-out training images); None
    when the test split is absent and not required. ``validation`` is the held-out
    training images (None: none held out). Counts, ``num_classes`` and ``class_names``
    are those of the kept classes and images."""
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    class_names: list
    mean: tuple
    num_train: int
    num_test: int
    builder: tfds.core.DatasetBuilder
    validation: tf.data.Dataset = None
    num_validation: int = 0
    eval_split: str = "test"
    train_from: object = None  # start_batch -> ``train`` from there (``repeat_train`` only)


EVALUATE_ON = ("test", "validation")


def _builder_options(name, split_seed, options):
    """``options`` plus ``split_seed`` for the builders whose own split is drawn with a
    seed (Caltech-256's per-class train/test draw)."""
    builder_cls = tfds.builder_cls(_tfds_name(name)[0])
    if "split_seed" in inspect.signature(builder_cls.builder_kwargs).parameters:
        return {**options, "split_seed": split_seed}
    return options


def load_datasets(name, data_dir, *, manual_dir=None, batch_size=64, crop_size=224,
                  resize=256, keep_aspect=False, test_crops="center", mean="dataset",
                  seed=None, jitter=preprocessing.JitterRanges(), color_jitter=True,
                  mirror=True, pad=0, shuffle_buffer=2048, repeat_train=False,
                  test_batch_size=None, require_test=True, classes=None,
                  examples_per_class=0, split_seed=0, validation_fraction=0.0, folds=0,
                  fold=None, evaluate_on="test", **options):
    """Prepares ``name`` if needed and returns its train/test pipelines (module docstring).

    Selection (``tftransfer.data.subsets``, on the training split only): ``classes``
    (names or labels, relabelled 0.. in that order; the test split is restricted to them),
    ``examples_per_class`` (0: all), ``validation_fraction`` or ``folds`` / ``fold``
    (held out of training), drawn with ``split_seed`` (for ``caltech256_*`` also the seed
    of the builder's own train/test split). ``evaluate_on="validation"`` evaluates on the
    held-out images (test transform) and never opens the test split. Augmentation:
    ``mirror``, ``pad`` (zero pixels per side before the random crop), ``color_jitter``.

    Raises ``missing_split_error`` when the test split is absent, ``require_test`` and
    ``evaluate_on="test"``.
    """
    if crop_size > resize:
        raise ValueError(f"crop_size {crop_size} exceeds resize {resize}.")
    if evaluate_on not in EVALUATE_ON:
        raise ValueError(f"evaluate_on={evaluate_on!r}: choose 'test' (the test split) or "
                         "'validation' (images held out of the training split).")
    if evaluate_on == "validation" and not (validation_fraction or folds):
        raise ValueError("evaluate_on='validation' needs images held out of the training "
                         "split: set validation_fraction (e.g. 0.2) or folds=K and fold.")
    builder = prepare(name, data_dir, manual_dir, resize, keep_aspect,
                      **_builder_options(name, split_seed, options))
    train_split, test_split = builder.TRAIN_SPLIT, builder.TEST_SPLIT
    splits = builder.info.splits
    on_test = evaluate_on == "test"
    if on_test and require_test and test_split not in splits:
        raise missing_split_error(builder, test_split, manual_dir)
    has_test = on_test and test_split in splits
    kept = selection.select(
        builder, train_split, test_split if has_test else None, classes=classes,
        examples_per_class=examples_per_class, validation_fraction=validation_fraction,
        folds=folds, fold=fold, split_seed=split_seed)
    mean = resolve_mean(builder, mean, train_split)
    test_batch_size = test_batch_size or batch_size
    if repeat_train and seed is None:  # one draw, so that train_from continues ``train``
        seed = int(np.random.default_rng().integers(2 ** 31))

    def train_from(start_batch):
        return train_dataset(builder, train_split, batch_size, crop_size, mean, seed, jitter,
                             color_jitter, shuffle_buffer, repeat_train, kept.train, mirror,
                             pad, start_batch)

    train = train_from(0)
    validation, num_validation = None, 0
    if kept.validation is not None:
        validation = test_dataset(builder, train_split, test_batch_size, crop_size, mean,
                                  test_crops, kept.validation)
        num_validation = len(kept.validation)
    if not on_test:
        test, num_test = validation, num_validation
    elif has_test:
        test = test_dataset(builder, test_split, test_batch_size, crop_size, mean,
                            test_crops, kept.test)
        num_test = splits[test_split].num_examples if kept.test is None else len(kept.test)
    else:
        test, num_test = None, 0
    return Datasets(
        train=train, test=test, num_classes=len(kept.class_names),
        class_names=kept.class_names, mean=mean,
        num_train=splits[train_split].num_examples if kept.train is None else len(kept.train),
        num_test=num_test, builder=builder, validation=validation,
        num_validation=num_validation, eval_split=evaluate_on,
        train_from=train_from if repeat_train else None)
