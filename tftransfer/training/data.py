"""The driver's inputs: training batches (repeated, global batch size) and test batches.

Every image reaches the network as ``preprocess(x, mode, mean)`` of
:mod:`tftransfer.models.preprocessing`, ``x`` the (augmented) RGB or grey pixels in
[0, 255], ``mode`` the preprocessing of the source weights and ``mean`` the target training
set's per-channel mean (``--mean=dataset``, Li et al. 2018, Section 4.1), ImageNet's, or the
mode's own (``--mean=none``). Datasets:

- the paper's datasets and ``class_folders`` through :func:`tftransfer.data.pipeline.
  load_datasets` (stored uint8 images; random crop, mirror and colour jitter; 1 or 10 test
  crops);
- ``synthetic``: random images whose class sets a colour and a stripe pattern (tests), 3
  channels at ``--resize``, the same crop/mirror/jitter and test crops;
- ``fashion_mnist``: the IDX files (grey 28x28); ``--resize`` above 28 upscales them
  (bilinear), ``--grey_to_rgb`` repeats the channel three times;
- ``--task=segmentation`` (``scenes``, ``cityscapes``, ``sbd``, ``segmentation_folders``):
  :mod:`tftransfer.training.segmentation_data`.

Every dataset takes the same selection (Li et al. 2018, Section 4.1: the hyper-parameters
are chosen by cross-validation on the training images): ``--classes`` (kept and
relabelled), ``--examples_per_class``, then ``--validation_fraction`` or ``--cv_folds`` /
``--cv_fold`` held out of the training images, drawn per class by
:func:`tftransfer.data.subsets.split_indices` with ``--split_seed``; a run holding images
out is evaluated on them and never reads its test images. And the same augmentation:
``--pad``, random crop, ``--mirror``, ``--color_jitter`` (3-channel images only; grey
images without padding nor mirror are not augmented).

The hook: :class:`Inputs` is what :func:`tftransfer.training.run.run` loads its data
through. The driver's own (:data:`DRIVER_INPUTS`) reads the flags only; an experiment that
needs other inputs passes a subclass (``run(config, inputs=...)``), e.g. the CPU study's,
which zero-pads the training images (:func:`in_memory_inputs` ``pad``), repeats the grey
channel (``rgb``), keeps the first test images of each class
(``test_examples_per_class``) and picks the source task's classes. A subclass describes
itself in :meth:`Inputs.identity`, which becomes part of the run's identity.
"""
import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

from tftransfer.data import preprocessing as data_preprocessing
from tftransfer.data import stream
from tftransfer.data import subsets
from tftransfer.models import preprocessing as model_preprocessing
from tftransfer.training import config as config_lib

SYNTHETIC_TEST_PER_CLASS = 8
SYNTHETIC_TRAIN_PER_CLASS = 16


@dataclasses.dataclass
class InputData:
    """``train``: infinite ``(pixels, labels)`` batches of the global batch size;
    ``test``: evaluation batches (``[B, 10, h, w, c]`` pixels for ten crops); ``mean``: the
    mean to subtract (None: the preprocessing mode's own). :func:`network_inputs` maps
    them to the network's input."""
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    num_train: int
    num_test: int
    input_shape: tuple
    mean: object
    eval_split: str
    class_names: list = None  # segmentation: the name of each class (background first)
    train_from: object = None  # start_batch -> ``train`` from that batch on (None: skip)
    data_path: str = None  # where the data was read (None: data_location.data_path(config))

    def train_at(self, start_batch):
        """The training batches from batch ``start_batch`` on: ``train_from(start_batch)``,
        which reads none of the first ``start_batch`` batches (a stateless stream,
        :mod:`tftransfer.data.stream`), or else ``train.skip(start_batch)``, which replays
        them (the segmentation builders' stream)."""
        if not start_batch:
            return self.train
        if self.train_from is not None:
            return self.train_from(start_batch)
        return self.train.skip(start_batch)


def synthetic_images(num_classes, per_class, size, seed):
    """uint8 images ``[num_classes * per_class, size, size, 3]`` and int64 labels: class
    ``c`` has its own colour and stripe orientation, plus pixel noise (std 25)."""
    rng = np.random.default_rng([seed, num_classes])
    colours = rng.uniform(60, 195, (num_classes, 3))
    angles = np.pi * np.arange(num_classes) / num_classes
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    labels = np.repeat(np.arange(num_classes), per_class)
    noise_rng = np.random.default_rng([seed, num_classes, per_class])
    stripes = np.sin((np.cos(angles)[:, None, None] * xx + np.sin(angles)[:, None, None] * yy)
                     * 2 * np.pi / 4)
    images = (colours[labels][:, None, None, :] + 40 * stripes[labels][..., None]
              + noise_rng.normal(0, 25, (len(labels), size, size, 3)))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def first_per_class(images, labels, per_class):
    """The first ``per_class`` images of each class, in stored order (0 = all)."""
    if not per_class:
        return images, labels
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    keep.sort()
    return images[keep], labels[keep]


def held_out(config):
    """True when ``config`` holds training images out for validation (``--validation_
    fraction`` or ``--cv_folds``): the run is evaluated on them, never on the test set."""
    return bool(config.data.validation_fraction or config.data.cv_folds)


def split(images, labels, config):
    """``(train, validation)`` ``(images, labels)`` pairs of the training arrays: the draw
    of :func:`tftransfer.data.subsets.split_indices` with ``--examples_per_class``,
    ``--validation_fraction`` or ``--cv_folds``/``--cv_fold`` and ``--split_seed``."""
    d = config.data
    try:
        train, validation = subsets.split_indices(labels, d.examples_per_class,
                                                  d.validation_fraction, d.cv_folds,
                                                  d.cv_fold, d.split_seed)
    except ValueError as error:
        raise config_lib.ConfigError(f"--dataset={d.dataset}: {error}") from error
    return (images[train], labels[train]), (images[validation], labels[validation])


@functools.lru_cache(maxsize=2)
def _fashion_arrays(data_dir):
    from tftransfer.data import fashion_mnist

    return fashion_mnist.load(data_dir)


def _fashion(config):
    from tftransfer.data import fashion_mnist

    data = _fashion_arrays(config.data.data_dir)
    classes = config_lib.integer_classes(config.data.classes) or list(range(10))
    train = fashion_mnist.select_classes(*data["train"], classes)
    test = fashion_mnist.select_classes(*data["test"], classes)
    return (train[0][..., None], train[1]), (test[0][..., None], test[1]), len(classes)


def resize_grey(images, size, rgb, batch=1000):
    """uint8 ``[n, h, w, 1]`` -> uint8 ``[n, size, size, 3 if rgb else 1]``: bilinear resize
    (skipped when already ``size``), rounded, and the channel repeated for ``rgb``."""
    if images.shape[1:3] != (size, size):
        images = np.concatenate([
            np.clip(np.round(tf.image.resize(tf.cast(images[i:i + batch], tf.float32),
                                             (size, size)).numpy()), 0, 255).astype(np.uint8)
            for i in range(0, len(images), batch)] or [np.zeros((0, size, size, 1), np.uint8)])
    return np.repeat(images, 3, axis=-1) if rgb else images


def _synthetic(config):
    num_classes = config.data.synthetic.classes
    per_class = max(config.data.examples_per_class, SYNTHETIC_TRAIN_PER_CLASS)
    x, y = synthetic_images(num_classes, per_class + SYNTHETIC_TEST_PER_CLASS,
                            config.data.resize, config.data.split_seed)
    first = np.tile(np.arange(per_class + SYNTHETIC_TEST_PER_CLASS) < per_class, num_classes)
    train, test = (x[first], y[first]), (x[~first], y[~first])
    if not config.data.classes:
        return train, test, num_classes
    classes = config_lib.integer_classes(config.data.classes)
    kept = [(images[i], labels) for (images, all_labels) in (train, test)
            for i, labels in [subsets.class_subset(all_labels, classes)]]
    return kept[0], kept[1], len(classes)


def _mean(config, images):
    if config.data.mean == "none":
        return None
    if config.data.mean == "imagenet":
        return data_preprocessing.IMAGENET_MEAN
    return model_preprocessing.channel_mean(images)


def network_inputs(dataset, mode, mean):
    """Maps ``(pixels, labels)`` batches to ``(preprocess(pixels, mode, mean), labels)``."""
    return dataset.map(lambda x, y: (model_preprocessing.preprocess(x, mode, mean), y),
                       num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _test_pixels(config, images):
    if images.shape[-1] != 3:
        return tf.cast(images, tf.float32)
    crops = "ten" if config.evaluation.eval_crops == 10 else "center"
    return data_preprocessing.test_transform(images, (0.0, 0.0, 0.0), config.data.crop_size,
                                             crops)


def stateless_batches(images, labels, batch_size, seed, crop, jitter, pad=0, mirror=True,
                      start_batch=0):
    """Infinite training batches of in-memory ``images``, a pure function of ``seed``, from
    batch ``start_batch`` on.

    The stream of :mod:`tftransfer.data.stream`: epoch ``e`` visits the images in the
    order ``stateless_shuffle(range(n), [seed, e])``; the example at stream position ``p``
    is augmented with the seed ``[seed, p]``: zero padding of ``pad`` pixels per side, then
    the random crop and (``mirror``) the mirror of :mod:`tftransfer.data.preprocessing`,
    and for 3-channel images the colour jitter (``jitter``). Grey images without padding
    nor mirror are not augmented (gathered whole: their crop is the image). No random
    state lives in the pipeline, so every replica of a distributed run sees the same
    stream, and ``start_batch=k`` yields bitwise batches ``k, k + 1, ...`` of the stream
    from 0 without reading the first ``k`` (a resumed run starts at once).
    """
    n = len(labels)
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    grey = images.shape[-1] != 3
    images, labels = tf.constant(images), tf.constant(labels)
    ds = stream.positions(n, seed, batch_size, start_batch)
    if grey and not pad and not mirror:  # no augmentation: gather whole batches
        return ds.batch(batch_size, drop_remainder=True).map(
            lambda position, index: (tf.cast(tf.gather(images, index), tf.float32),
                                     tf.gather(labels, index)))

    def example(position, index):
        image = tf.gather(images, index)
        if grey:  # the crop and mirror of the same seed, no colour jitter
            crop_seed = tf.random.experimental.stateless_split(
                stream.example_seed(seed, position), 2)[0]
            image = data_preprocessing.random_crop_mirror(image, crop_seed, crop, mirror)
            return tf.cast(image, tf.float32), tf.gather(labels, index)
        return (stream.augment(image, position, seed, crop, (0.0, 0.0, 0.0), jitter, mirror),
                tf.gather(labels, index))

    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True)


def arrays(config):
    """``(train, test, num_classes)`` of an in-memory dataset of ``config``: ``(images,
    labels)`` uint8 and int64 arrays as stored (synthetic: at ``--resize``; fashion_mnist:
    grey 28x28, ``--classes`` kept and relabelled)."""
    return _fashion(config) if config.data.dataset == "fashion_mnist" else _synthetic(config)


def in_memory_inputs(config, train, test, num_classes, pad=None, rgb=None,
                     test_examples_per_class=0):
    """InputData of in-memory arrays (:func:`arrays`): the per-class subsample and
    validation split or fold of ``config`` (:func:`split`), grey images resized to
    ``--resize`` (their channel repeated three times with ``--grey_to_rgb`` or ``rgb``),
    the first ``test_examples_per_class`` test images of each class in stored order (0 =
    all), and the training augmentation of :func:`stateless_batches`: ``--pad``,
    ``--mirror`` and ``--color_jitter``.

    An input hook may pass ``pad`` (the CPU study's CIFAR-style augmentation: ``pad``
    zero pixels per side, the random crop back and the mirror, which 3-channel images
    always get) and ``rgb``, instead of the flags. A run holding images out is
    evaluated on them and never reads the test arrays.
    """
    d = config.data
    if rgb is None:
        rgb = d.dataset == "fashion_mnist" and d.fashion_mnist.grey_to_rgb
    config = config_lib.dataset_defaults(config, 3 if rgb or train[0].shape[-1] == 3 else 1)
    d = config.data
    if pad is None:
        pad, mirror = d.pad, d.mirror
    else:
        mirror = bool(pad) or train[0].shape[-1] == 3 or rgb
    train, validation = split(*train, config)
    if held_out(config):
        test, eval_split = validation, "validation"
    else:
        test, eval_split = first_per_class(*test, test_examples_per_class), "test"
    if train[0].shape[-1] == 1:
        train, test = [(resize_grey(x, d.resize, rgb), y) for x, y in (train, test)]
    mean = _mean(config, train[0])
    train_from = functools.partial(stateless_batches, *train, config.optim.batch_size,
                                   config.optim.seed, d.crop_size, d.color_jitter, pad, mirror)
    test_ds = tf.data.Dataset.from_tensor_slices(test).map(
        lambda x, y: (_test_pixels(config, x), y)).batch(config.evaluation.eval_batch_size)
    channels = train[0].shape[-1]
    return InputData(train_from(0), test_ds, num_classes,
                     len(train[1]), len(test[1]),
                     (d.crop_size, d.crop_size, channels), mean, eval_split,
                     train_from=train_from)


def from_pipeline(config):
    """InputData of a dataset of :mod:`tftransfer.data.pipeline`, with the selection
    options (``--classes``, ``--examples_per_class``, ``--validation_fraction`` or
    ``--cv_folds``/``--cv_fold``, ``--split_seed``) and the augmentation ones
    (``--mirror``, ``--pad``, ``--color_jitter``); a run holding images out is evaluated
    on them and never opens the test split."""
    from tftransfer.data import pipeline

    config = config_lib.dataset_defaults(config, 1 if config.data.rgb_to_grey else 3)
    d = config.data
    options = dataclasses.asdict(d.options()) if d.options() is not config_lib.NO_OPTIONS \
        else {}
    try:
        data = pipeline.load_datasets(
            d.dataset, d.data_dir, manual_dir=d.manual_dir,
            batch_size=config.optim.batch_size, crop_size=d.crop_size, resize=d.resize,
            keep_aspect=d.keep_aspect,
            test_crops="ten" if config.evaluation.eval_crops == 10 else "center",
            mean=(0.0, 0.0, 0.0), seed=config.optim.seed, color_jitter=d.color_jitter,
            mirror=d.mirror, pad=d.pad, repeat_train=True,
            test_batch_size=config.evaluation.eval_batch_size,
            classes=list(d.classes) or None, examples_per_class=d.examples_per_class,
            split_seed=d.split_seed, validation_fraction=d.validation_fraction,
            folds=d.cv_folds, fold=d.cv_fold,
            evaluate_on="validation" if held_out(config) else "test", **options)
    except ValueError as error:
        if "tfds" in type(error).__module__:
            raise
        raise config_lib.ConfigError(f"--dataset={d.dataset}: {error}") from error
    mean = None if d.mean == "none" else pipeline.resolve_mean(data.builder, d.mean)
    train_from, test, channels = data.train_from, data.test, 3
    if d.rgb_to_grey:
        train_from = (lambda start_batch, whole=data.train_from:
                      to_grey(whole(start_batch)))
        test, channels = to_grey(test), 1
        mean = None if mean is None else np.asarray([np.asarray(mean, np.float32) @ LUMA])
    return InputData(train_from(0), test, data.num_classes, data.num_train, data.num_test,
                     (d.crop_size, d.crop_size, channels), mean, data.eval_split,
                     train_from=train_from, data_path=os.fspath(data.builder.data_dir))


LUMA = np.array([0.2989, 0.587, 0.114], np.float32)  # tf.image.rgb_to_grayscale's (ITU-R 601)


def to_grey(dataset):
    """``(RGB pixels [..., 3], labels)`` batches -> ``(grey [..., 1], labels)``: the
    luma ``0.2989 R + 0.587 G + 0.114 B`` (``tf.image.rgb_to_grayscale``); the mean of the
    grey images is the same combination of the RGB means."""
    return dataset.map(lambda x, y: (tf.image.rgb_to_grayscale(x), y),
                       num_parallel_calls=tf.data.AUTOTUNE)


def load(config):
    """InputData for ``config`` (the driver's own inputs; ``--task=segmentation``:
    :mod:`tftransfer.training.segmentation_data`)."""
    if config.task.task == "segmentation":
        from tftransfer.training import segmentation_data

        return segmentation_data.load(config)
    if config.data.options().in_memory:
        return in_memory_inputs(config, *arrays(config))
    if not config.data.data_dir:
        raise config_lib.ConfigError(f"--dataset={config.data.dataset} needs --data_dir (the "
                                     "tfds data directory where it is, or will be, prepared; "
                                     "tftransfer.training.data_location).")
    return from_pipeline(config)


def source_config(config, num_classes):
    """The configuration of ``config``'s source task (``--source_eval_dataset``, Li et al.
    2018, Table 5): its dataset and data directory, every training image, the dataset's
    default options (synthetic: ``num_classes`` classes, the source classifier's width)."""
    return config_lib.replace(
        config, dataset=config.evaluation.source_eval_dataset,
        data_dir=config.evaluation.source_eval_data_dir or config.data.data_dir,
        manual_dir=None, examples_per_class=0, validation_fraction=0.0, cv_folds=0,
        cv_fold=None, classes=[], synthetic_classes=num_classes)


class Inputs:
    """Where a run's data comes from: the hook of :func:`tftransfer.training.run.run`.

    This base class is the driver's own (the flags only). Subclass it to give the driver
    other inputs; a subclass should be a frozen dataclass (picklable, so it travels to
    worker processes) and override:

    - :meth:`identity`: a JSON-ready description of everything it changes (stored in the
      run's identity, so a restart with other inputs stops);
    - :meth:`load` (the target task's data) and, for ``--source_eval_dataset``,
      :meth:`source` (the source task's test data);
    - :meth:`input_shape` when it changes the number of channels.
    """

    def identity(self):
        """None for the driver's own inputs (nothing beyond the flags)."""
        return None

    def input_shape(self, config):
        """The network input shape of ``config``, known before loading (grey
        Fashion-MNIST: one channel, three with ``--grey_to_rgb``)."""
        d = config.data
        if config.task.task == "segmentation":
            from tftransfer.training import segmentation_data

            return (d.crop_size, d.crop_size, segmentation_data.channels(config))
        grey = (d.dataset == "fashion_mnist" and not d.fashion_mnist.grey_to_rgb
                or d.rgb_to_grey)
        channels = 1 if grey else 3
        return (config.data.crop_size, config.data.crop_size, channels)

    def load(self, config):
        """:class:`InputData` of the target task of ``config``."""
        return load(config)

    def source(self, config, num_classes):
        """:class:`InputData` whose ``test`` and ``mean`` are the source task's, for a
        source classifier of ``num_classes`` outputs."""
        return self.load(source_config(config, num_classes))


DRIVER_INPUTS = Inputs()


def source_eval_data(config, mode, num_classes, inputs=DRIVER_INPUTS):
    """Test batches of the source task (``--source_eval_dataset``) from ``inputs``, at most
    ``--source_eval_examples`` images, preprocessed like the target inputs."""
    data = inputs.source(config, num_classes)
    test = network_inputs(data.test, mode, data.mean)
    e = config.evaluation
    if e.source_eval_examples:
        test = test.take(-(-e.source_eval_examples // e.eval_batch_size))
    return test
