"""Subsets of a prepared tfds split, example by example, for ``pipeline.load_datasets``.

The rule of what is kept is :mod:`tftransfer.data.subsets` (NumPy on labels). Here:

1. ``read_labels(builder, split)``: one pass over the split in stored order
   (``shuffle_files=False``), decoding only the labels, with each example's ``tfds_id``
   (``<name>-<split>.tfrecord-<shard>-of-<shards>__<index>``, fixed by the prepared files);
2. ``select(...)``: ``class_subset`` and ``split_indices`` on those labels, as
   ``Subset``s: the ``tfds_id``s kept and their new labels;
3. ``Subset.select(dataset)``: keeps the examples of a ``tfds.ReadConfig(add_tfds_id=True)``
   dataset whose id is in the subset (a ``tf.lookup.StaticHashTable``) as ``(image,
   new label)``, whatever the file order, so training keeps shuffling its files.

The validation subset comes from the training split only; the test split is read only to
restrict it to the kept classes (``classes``), never to choose anything.
"""
import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tftransfer.data import subsets


@dataclasses.dataclass(frozen=True)
class Subset:
    """Examples of one split: ``ids`` (their ``tfds_id``s, bytes) and ``labels`` (new)."""
    ids: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.ids)

    def select(self, dataset):
        """``dataset`` (dicts with ``tfds_id``, ``image``, ``label``) -> ``(image, label)``
        of this subset's examples, in the dataset's order, with the new labels."""
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.ids, tf.string), tf.constant(self.labels, tf.int64)),
            default_value=-1)
        dataset = dataset.filter(lambda example: table.lookup(example["tfds_id"]) >= 0)
        return dataset.map(lambda example: (example["image"], table.lookup(example["tfds_id"])),
                           num_parallel_calls=tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class Selection:
    """What ``select`` keeps: ``train`` (None: the whole split) and ``validation`` (None:
    none held out) subsets of the training split, ``test`` (None: the whole test split)
    and the kept classes (``class_names``, in new-label order)."""
    train: Subset
    validation: Subset
    test: Subset
    class_names: list


def read_labels(builder, split):
    """``(tfds_ids, labels)`` of ``split`` in stored order, reading no image."""
    ds = builder.as_dataset(split, shuffle_files=False,
                            read_config=tfds.ReadConfig(add_tfds_id=True),
                            decoders=tfds.decode.PartialDecoding({"label": True}))
    ids, labels = [], []
    for batch in ds.batch(4096).as_numpy_iterator():
        ids.append(batch["tfds_id"])
        labels.append(batch["label"])
    return (np.concatenate(ids) if ids else np.zeros([0], object),
            np.concatenate(labels) if labels else np.zeros([0], np.int64))


def class_indices(class_label, classes):
    """``classes`` (names or integer labels of ``class_label``, a ``tfds`` ``ClassLabel``)
    -> integer labels; raises ``ValueError`` naming unknown names and listing some."""
    names = list(class_label.names)
    unknown = [c for c in classes if isinstance(c, str) and c not in names]
    if unknown:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ValueError(f"classes {unknown} are not classes of this dataset: choose among "
                         f"its {len(names)} class names ({shown}) or give integer labels.")
    out_of_range = [c for c in classes if not isinstance(c, str)
                    and not 0 <= int(c) < len(names)]
    if out_of_range:
        raise ValueError(f"classes {out_of_range} are not labels of this dataset: integer "
                         f"labels are 0..{len(names) - 1}.")
    return [names.index(c) if isinstance(c, str) else int(c) for c in classes]


def _subset(ids, labels, indices):
    return Subset(ids[indices], labels[indices].astype(np.int64))


def select(builder, train_split, test_split=None, *, classes=None, examples_per_class=0,
           validation_fraction=0.0, folds=0, fold=None, split_seed=0):
    """The ``Selection`` of ``builder``'s splits (module docstring); with no option, every
    subset is None (the stored splits as they are) and nothing is read.

    ``test_split`` (None: not opened) is only restricted to ``classes``.
    """
    class_label = builder.info.features["label"]
    if classes is None and not (examples_per_class or validation_fraction or folds):
        subsets.check_options(examples_per_class, validation_fraction, folds, fold)
        return Selection(None, None, None, list(class_label.names))
    chosen = (list(range(class_label.num_classes)) if classes is None
              else class_indices(class_label, classes))
    ids, labels = read_labels(builder, train_split)
    kept, new_labels = subsets.class_subset(labels, chosen)
    ids = ids[kept]
    train, validation = subsets.split_indices(
        new_labels, examples_per_class, validation_fraction, folds, fold, split_seed)
    test = None
    if test_split is not None and classes is not None:
        test_ids, test_labels = read_labels(builder, test_split)
        test_kept, test_new = subsets.class_subset(test_labels, chosen, allow_missing=True)
        test = Subset(test_ids[test_kept], test_new)
    return Selection(train=_subset(ids, new_labels, train),
                     validation=(_subset(ids, new_labels, validation)
                                 if validation_fraction or folds else None),
                     test=test, class_names=[class_label.names[c] for c in chosen])

