"""The driver's segmentation inputs (``--task=segmentation``): the builders of
:mod:`tftransfer.data.segmentation_pipeline` and the in-memory ``scenes``.

Both give :class:`tftransfer.training.data.InputData` whose ``train`` is an infinite,
seeded stream of crops transformed by :func:`tftransfer.data.segmentation_transforms.
train_transform` (builders: :func:`tftransfer.data.segmentation_pipeline.train_batches`;
scenes: :func:`scene_batches`, the same transform on the in-memory arrays; random scale
``--train_scale_min/--train_scale_max``, crop ``--crop_size`` padded with the ignore label
where the image is smaller, ``--mirror``, ``--color_jitter``; a pure function of ``--seed``:
a resumed run starts the scenes' stream at the restored batch directly
(``InputData.train_from``) and skips the builders' consumed batches) and whose ``test`` is whole images
(:func:`~tftransfer.data.segmentation_pipeline.eval_batches`), ``(pixels [B, H, W, C] in
[0, 255], masks [B, H, W])``.

- ``cityscapes``, ``sbd``, ``segmentation_folders``: the builder's ``train`` split, and its
  ``validation`` split for the evaluation (Cityscapes val, VOC 2012 val: the paper's Table
  4), one image per evaluation batch (sizes may differ);
- ``scenes``: :func:`tftransfer.data.scenes.make_scenes` of Fashion-MNIST items (IDX files
  in ``--data_dir``) or of :func:`synthetic_items` (``--scenes_source=synthetic``), the item
  classes ``--classes`` (default all ten; mask ``1 + i`` for the i-th, 0 background), so
  ``K = 1 + len(classes)``. Training scenes (``--scenes_train``) are composed of the
  training images, test scenes (``--scenes_test``) of the test images; with
  ``--validation_fraction`` or ``--cv_folds`` the held-out training images compose the
  validation scenes instead, on which the run is evaluated (never the test scenes). Scene
  draws are seeded ``[--split_seed, 0]`` (training), ``[.., 1]`` (validation), ``[.., 2]``
  (test).
"""
import contextlib
import functools

import keras
import numpy as np
import tensorflow as tf

from tftransfer.data import scenes as scenes_lib
from tftransfer.data import stream
from tftransfer.models import preprocessing as model_preprocessing
from tftransfer.segmentation.metrics import IGNORE_LABEL
from tftransfer.training import config as config_lib

ITEM_SIZE = 28
SYNTHETIC_ITEMS_PER_CLASS = 40
SCENE_SEEDS = {"train": 0, "validation": 1, "test": 2}


def synthetic_items(per_class, seed, num_classes=config_lib.FASHION_MNIST_CLASSES):
    """Grey uint8 items ``[num_classes * per_class, 28, 28]`` and int64 labels: class ``c``
    is an ellipse of its own radii and brightness ``70 + 18 c`` (noise std 6, a shift of up
    to 3 pixels) on a black ground, so the scenes' masks are learnable in a few steps."""
    rng = np.random.default_rng([seed, num_classes, per_class])
    labels = np.repeat(np.arange(num_classes), per_class)
    yy, xx = np.mgrid[:ITEM_SIZE, :ITEM_SIZE].astype(np.float64)
    images = np.zeros((len(labels), ITEM_SIZE, ITEM_SIZE), np.uint8)
    for i, c in enumerate(labels):
        cy, cx = 13.5 + rng.integers(-3, 4, 2)
        ry, rx = 5 + 2 * (c % 4), 11 - 2 * (c % 3)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        value = 70 + 18 * c + rng.normal(0, 6, inside.sum())
        images[i][inside] = np.clip(value, 40, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _fashion_arrays(data_dir):
    from tftransfer.data import fashion_mnist

    return fashion_mnist.load(data_dir)


def _items(config):
    """``(train, test, class_names)``: grey ``[N, 28, 28]`` items with their labels."""
    if config.data.scenes.source == "synthetic":
        train = synthetic_items(SYNTHETIC_ITEMS_PER_CLASS, config.data.split_seed)
        test = synthetic_items(SYNTHETIC_ITEMS_PER_CLASS // 2, config.data.split_seed + 1)
        return train, test, [f"item{c}" for c in range(config_lib.FASHION_MNIST_CLASSES)]
    from tftransfer.data import fashion_mnist

    data = _fashion_arrays(config.data.data_dir)
    return data["train"], data["test"], list(fashion_mnist.CLASS_NAMES)


def scene_arrays(config):
    """``(train, evaluated, eval_split, class_names)``: ``(scenes uint8 [n, S, S, C], masks
    uint8 [n, S, S])`` of the training and the evaluated scenes (module docstring)."""
    from tftransfer.training import data as data_lib

    d, s = config.data, config.data.scenes
    (train_x, train_y), (test_x, test_y), names = _items(config)
    classes = config_lib.integer_classes(d.classes) or list(range(config_lib.FASHION_MNIST_CLASSES))
    keep = np.isin(train_y, classes)
    (train_x, train_y), (val_x, val_y) = data_lib.split(train_x[keep], train_y[keep], config)
    if data_lib.held_out(config):
        eval_x, eval_y, split = val_x, val_y, "validation"
    else:
        eval_x, eval_y, split = test_x, test_y, "test"

    def compose(images, labels, count, which):
        x, masks, _ = scenes_lib.make_scenes(
            images, labels, count, size=s.size, items=tuple(s.items), scale=tuple(s.scale),
            classes=classes, seed=[d.split_seed, SCENE_SEEDS[which]])
        x = x[..., None]
        return (np.repeat(x, 3, axis=-1) if s.rgb else x), masks

    class_names = ["background"] + [names[c] for c in classes]
    return (compose(train_x, train_y, s.train, "train"),
            compose(eval_x, eval_y, s.test, split), split, class_names)


def scene_batches(images, masks, batch_size, seed, crop, scale=None, mirror=True,
                  color_jitter=False, fill=0.0, start_batch=0):
    """Infinite training batches ``(float32 [B, crop, crop, C], int32 [B, crop, crop])`` of
    in-memory ``images [n, H, W, C]`` (C = 1 or 3) and ``masks``, a pure function of
    ``seed`` as :func:`tftransfer.training.data.stateless_batches`: epoch ``e`` visits the
    scenes in the order ``stateless_shuffle(range(n), [seed, e])`` and the example at
    stream position ``p`` gets :func:`tftransfer.data.segmentation_transforms.
    train_transform` with the seed ``[seed, p]`` (a grey image goes through it as three
    equal channels and comes back as one); from batch ``start_batch`` on without reading
    the first ones (:func:`tftransfer.data.stream.positions`)."""
    from tftransfer.data import segmentation_transforms as transforms

    n, grey = len(masks), images.shape[-1] == 1
    images, masks = tf.constant(images), tf.constant(masks)

    def example(position, index):
        image = tf.gather(images, index)
        if grey:
            image = tf.repeat(image, 3, axis=-1)
        image, mask = transforms.train_transform(
            image, tf.gather(masks, index), tf.stack([tf.constant(seed, tf.int64), position]),
            (crop, crop), scale, mirror, color_jitter, IGNORE_LABEL, fill)
        return (image[..., :1] if grey else image), mask

    ds = stream.positions(n, seed, batch_size, start_batch)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _eval_batches(images, masks, batch_size):
    """Whole scenes ``(float32 [B, S, S, C], int32 [B, S, S])`` in stored order."""
    return tf.data.Dataset.from_tensor_slices(
        (images.astype(np.float32), masks.astype(np.int32))).batch(batch_size)


def _scale(config):
    t = config.task
    return None if t.train_scale_min is None else (t.train_scale_min, t.train_scale_max)


def _fill(mean):
    """The pixel value of the crop's padding: the subtracted mean (0 after subtraction)."""
    return 0.0 if mean is None else tuple(float(v) for v in np.ravel(mean))


@contextlib.contextmanager
def _no_global_tf_seed(seed):
    """Builds a stream without TensorFlow's global seed, then seeds as
    ``keras.utils.set_random_seed(seed)`` again. ``Dataset.shuffle`` with a tensor seed (the
    per-epoch seeds of ``train_batches``) fails while a global seed is set (TensorFlow
    compares the combined seeds in Python); the stream is a function of its own seeds, so
    it does not depend on the global one, and reseeding afterwards leaves the model's
    initialisation as after the run's ``set_random_seed``."""
    tf.random.set_seed(None)
    try:
        yield
    finally:
        keras.utils.set_random_seed(seed)


def _batches(config, train_examples, eval_examples, mean, eval_batch):
    from tftransfer.data import segmentation_pipeline as seg_data

    d = config.data
    with _no_global_tf_seed(config.optim.seed):
        train = seg_data.train_batches(
            train_examples, config.optim.batch_size, (d.crop_size, d.crop_size),
            scale=_scale(config), mirror=d.mirror, color_jitter=d.color_jitter,
            ignore_label=IGNORE_LABEL, fill=_fill(mean), seed=config.optim.seed)
    return train, seg_data.eval_batches(eval_examples, eval_batch)


def scenes_inputs(config):
    """InputData of ``--dataset=scenes`` (module docstring)."""
    from tftransfer.training import data as data_lib

    (train_x, train_m), (eval_x, eval_m), split, names = scene_arrays(config)
    mean = (None if config.data.mean == "none" else
            model_preprocessing.channel_mean(train_x) if config.data.mean == "dataset"
            else _imagenet_mean(train_x.shape[-1]))
    d, crop = config.data, config.data.crop_size
    fill = _fill(mean)
    train_from = functools.partial(
        scene_batches, train_x, train_m, config.optim.batch_size, config.optim.seed, crop,
        _scale(config), d.mirror, d.color_jitter,
        fill[0] if isinstance(fill, tuple) and len(fill) == 1 else fill)
    test = _eval_batches(eval_x, eval_m, config.evaluation.eval_batch_size)
    return data_lib.InputData(train_from(start_batch=0), test, len(names), len(train_m),
                              len(eval_m), (crop, crop, train_x.shape[-1]), mean, split,
                              names, train_from=train_from)


def _imagenet_mean(channels):
    from tftransfer.data import preprocessing as data_preprocessing

    mean = np.asarray(data_preprocessing.IMAGENET_MEAN, np.float32)
    return mean if channels == 3 else np.asarray([mean.mean()], np.float32)


def pipeline_inputs(config):
    """InputData of a builder of :mod:`tftransfer.data.segmentation_pipeline`: its
    ``train`` split for training, ``validation`` for the evaluation."""
    from tftransfer.data import segmentation_pipeline as seg_data
    from tftransfer.training import data as data_lib

    d = config.data
    try:
        train = seg_data.load_examples(d.dataset, "train", d.data_dir, d.manual_dir)
        evaluated = seg_data.load_examples(d.dataset, "validation", d.data_dir, d.manual_dir)
    except ValueError as error:
        if "tfds" in type(error).__module__:
            raise
        raise config_lib.ConfigError(f"--dataset={d.dataset}: {error}") from error
    mean = None if d.mean == "none" else _imagenet_mean(3)
    train_ds, test_ds = _batches(config, train.dataset, evaluated.dataset, mean, 1)
    return data_lib.InputData(train_ds, test_ds, train.num_classes, train.num_examples,
                              evaluated.num_examples, (d.crop_size, d.crop_size, 3), mean,
                              "validation", list(train.class_names))


def load(config):
    """InputData of the segmentation dataset of ``config``."""
    if config.data.dataset == "scenes":
        return scenes_inputs(config)
    if not config.data.data_dir:
        raise config_lib.ConfigError(
            f"--dataset={config.data.dataset} needs --data_dir (the tfds data directory where "
            "it is, or will be, prepared).")
    return pipeline_inputs(config)


def channels(config):
    """Channels of the network input of a segmentation ``config``, known before loading."""
    d = config.data
    return (3 if d.scenes.rgb else 1) if d.dataset == "scenes" else 3
