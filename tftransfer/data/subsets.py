"""Which training images to keep, train on and validate on: NumPy on label arrays alone.

Model selection (choosing alpha, beta or the learning rate; Li et al. 2018, Section 4.1)
must not look at the test images, so every subset here is carved from the labels of the
training split; the test split is never an input.

``class_subset(labels, classes)``: the positions of the examples of ``classes`` and their
new labels ``0..len(classes)-1``, in the order ``classes`` is given.

``split_indices(labels, per_class, validation_fraction, folds, fold, seed)``, with
``rng = numpy.random.default_rng(seed)`` and, for each class ``c`` in ``numpy.unique(labels)``
order (ascending), ``members`` its positions in ``labels`` (ascending):

1. ``chosen = rng.choice(members, n, replace=False)`` with ``n = per_class`` (0: all of the
   class), a random draw in random order: the kept images of class ``c``;
2. ``validation_fraction``: the first ``round(n * validation_fraction)`` of ``chosen``
   are held out for validation, the rest train;
3. ``folds=K`` (k-fold cross-validation, instead of 2): ``chosen`` is cut into K
   consecutive folds of near-equal size, as ``numpy.array_split``: the first ``n % K``
   folds hold ``n // K + 1`` images, the others ``n // K``; fold ``fold`` validates and
   the other ``K - 1`` train (in ``chosen`` order). Each kept image is in exactly one
   validation fold, every class in every fold, and the K folds come from the same draw
   as step 1 (so ``folds`` and ``validation_fraction`` keep the same images for a seed).

Both index arrays are positions in ``labels``, class after class in the order above (not
sorted): this is exactly the draw of the demo's former in-memory ``subsample``, so results
computed with it are reproduced bitwise.
"""
import numpy as np


def class_subset(labels, classes, allow_missing=False):
    """``(indices, new_labels)``: positions (ascending) of the examples whose label is in
    ``classes`` and their labels renumbered ``0..len(classes)-1`` in the order of ``classes``.

    Raises ``ValueError`` naming the duplicated classes, or (unless ``allow_missing``, e.g.
    for a test split lacking a class) the classes without any example, with the labels
    present, so that a typo is not silently an empty class.
    """
    labels = np.asarray(labels)
    classes = [int(c) for c in classes]
    if not classes:
        raise ValueError("classes is empty: give at least one class to keep (or None for all).")
    duplicated = sorted({c for c in classes if classes.count(c) > 1})
    if duplicated:
        raise ValueError(f"classes {classes} lists {duplicated} more than once: give each "
                         "class once (its position sets its new label).")
    present = np.unique(labels)
    missing = [c for c in classes if c not in present]
    if missing and not allow_missing:
        raise ValueError(f"classes {missing} have no example (labels present: "
                         f"{present.tolist()}): choose classes among those.")
    indices = np.flatnonzero(np.isin(labels, classes))
    new_label = {c: i for i, c in enumerate(classes)}
    return indices, np.array([new_label[int(v)] for v in labels[indices]], np.int64)


def split_indices(labels, per_class=0, validation_fraction=0.0, folds=0, fold=None, seed=0):
    """``(train_indices, validation_indices)``, int64 positions in ``labels`` (module
    docstring); ``validation_indices`` is empty when neither a fraction nor folds is given.

    Raises ``ValueError`` naming the bad value and the fix: ``per_class`` above a class's
    size, a ``validation_fraction`` leaving a class without training or validation
    image, ``folds`` with a fraction, ``folds=1``, ``fold`` missing or out of range,
    ``folds`` above the smallest kept class.
    """
    labels = np.asarray(labels)
    check_options(per_class, validation_fraction, folds, fold)
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = per_class or len(members)
        if n > len(members):
            raise ValueError(
                f"examples_per_class={n} but class {c} has only {len(members)} training "
                f"images: use at most {np.bincount(_dense(labels)).min()} (the smallest "
                "class), or 0 to keep every image.")
        chosen = rng.choice(members, n, replace=False)
        if folds:
            if folds > n:
                raise ValueError(
                    f"folds={folds} but class {c} keeps only {n} image(s): every fold needs "
                    f"an image of every class; use folds <= {n} or keep more images.")
            held = np.array_split(np.arange(n), folds)[fold]
            validation.extend(chosen[held])
            train.extend(np.delete(chosen, held))
            continue
        n_val = int(round(n * validation_fraction))
        if validation_fraction and not 0 < n_val < n:
            raise ValueError(
                f"validation_fraction={validation_fraction} leaves no training or no "
                f"validation image out of the {n} kept images of class {c} "
                f"(round({n} * {validation_fraction}) = {n_val}): choose a fraction "
                f"between {1 / n:.3g} and {1 - 1 / n:.3g}, or keep more images per class.")
        validation.extend(chosen[:n_val])
        train.extend(chosen[n_val:])
    return np.array(train, np.int64), np.array(validation, np.int64)


def check_options(per_class, validation_fraction, folds, fold):
    """Raises the errors of ``split_indices`` that do not depend on the labels."""
    if per_class < 0:
        raise ValueError(f"examples_per_class={per_class} is negative: give a count, or 0 "
                         "to keep every image.")
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction={validation_fraction} is not in [0, 1): "
                         "give the share of each class to hold out, e.g. 0.2 (0: none).")
    if not folds:
        if fold is not None:
            raise ValueError(f"fold={fold} without folds: set folds=K (K >= 2) for k-fold "
                             "cross-validation, or drop fold.")
        return
    if validation_fraction:
        raise ValueError(f"folds={folds} and validation_fraction={validation_fraction} are "
                         "two ways to hold out validation images: give one of them.")
    if folds < 2:
        raise ValueError(f"folds={folds}: k-fold cross-validation needs folds >= 2 (or 0 "
                         "for none).")
    if fold is None or not 0 <= fold < folds:
        raise ValueError(f"fold={fold} with folds={folds}: choose the validation fold "
                         f"fold in 0..{folds - 1}.")


def _dense(labels):
    """``labels`` renumbered ``0..k-1`` (for class counts)."""
    return np.unique(labels, return_inverse=True)[1]
