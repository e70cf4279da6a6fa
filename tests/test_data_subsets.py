"""subsets: the former in-memory draw reproduced exactly; class subsets, held-out fractions
and k folds checked by independent NumPy reasoning; the errors."""
import numpy as np
import tensorflow as tf

from tftransfer.data import subsets


def former_subsample(labels, per_class, validation_fraction, seed):
    """The index logic of ``subsample`` in tftransfer/training/data.py, verbatim (the
    demo's and the CPU study's draw), without the image arrays."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = per_class or len(members)
        if n > len(members):
            raise ValueError(f"--examples_per_class={n} but class {c} has only "
                             f"{len(members)} training images.")
        chosen = rng.choice(members, n, replace=False)
        n_val = int(round(n * validation_fraction))
        if validation_fraction and not 0 < n_val < n:
            raise ValueError(f"--validation_fraction={validation_fraction} leaves no training "
                             f"or no validation image out of {n} per class.")
        val_idx.extend(chosen[:n_val])
        train_idx.extend(chosen[n_val:])
    return np.array(train_idx, int), np.array(val_idx, int)


def random_labels(rng, num_classes=5, low=12, high=30):
    """Shuffled labels with unequal class sizes and non-contiguous class values."""
    values = rng.choice(100, num_classes, replace=False)
    labels = np.concatenate([np.full(rng.integers(low, high), v) for v in values])
    return rng.permutation(labels)


class FormerDrawTest(tf.test.TestCase):

    def test_equals_the_former_subsample_bitwise(self):
        rng = np.random.default_rng(123)
        cases = 0
        for seed in (0, 1, 7, 2024):
            labels = random_labels(rng)
            for per_class in (0, 1, 5, 12):
                for fraction in (0.0, 0.1, 0.25, 0.5, 0.8):
                    try:
                        expected = former_subsample(labels, per_class, fraction, seed)
                    except ValueError:
                        with self.assertRaises(ValueError):
                            subsets.split_indices(labels, per_class, fraction, seed=seed)
                        continue
                    got = subsets.split_indices(labels, per_class, fraction, seed=seed)
                    for a, b in zip(got, expected):
                        self.assertAllEqual(a, b)  # Same indices, same order.
                    cases += 1
        self.assertGreater(cases, 50)


class SplitIndicesTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.labels = random_labels(np.random.default_rng(5))
        self.sizes = {c: int(np.sum(self.labels == c)) for c in np.unique(self.labels)}

    def test_kept_images_are_in_train_or_validation_exactly_once(self):
        train, val = subsets.split_indices(self.labels, 10, 0.3, seed=4)
        kept = np.concatenate([train, val])
        self.assertLen(np.unique(kept), len(kept))  # Disjoint, no repetition.
        for c in self.sizes:
            self.assertEqual(np.sum(self.labels[train] == c), 7)
            self.assertEqual(np.sum(self.labels[val] == c), 3)

    def test_all_images_without_options_and_seed_changes_the_draw(self):
        train, val = subsets.split_indices(self.labels)
        self.assertEmpty(val)
        self.assertAllEqual(np.sort(train), np.arange(len(self.labels)))
        a, _ = subsets.split_indices(self.labels, 5, seed=0)
        b, _ = subsets.split_indices(self.labels, 5, seed=1)
        self.assertNotAllEqual(np.sort(a), np.sort(b))

    def test_folds_partition_the_kept_images_per_class(self):
        k, per_class = 4, 10
        kept_by_fraction = np.concatenate(subsets.split_indices(self.labels, per_class, 0.5,
                                                                seed=9))
        seen = []
        for fold in range(k):
            train, val = subsets.split_indices(self.labels, per_class, folds=k, fold=fold,
                                               seed=9)
            self.assertEmpty(np.intersect1d(train, val))
            # The same kept images as the fraction split of the same seed.
            self.assertAllEqual(np.sort(np.concatenate([train, val])),
                                np.sort(kept_by_fraction))
            for c in self.sizes:
                # array_split of 10 into 4: folds 0, 1 hold 3 images, folds 2, 3 hold 2.
                self.assertEqual(np.sum(self.labels[val] == c), 3 if fold < 2 else 2)
            seen.append(val)
        seen = np.concatenate(seen)
        self.assertLen(np.unique(seen), len(seen))  # Each image in exactly one fold.
        self.assertAllEqual(np.sort(seen), np.sort(kept_by_fraction))

    def test_folds_follow_the_documented_cut_of_the_draw(self):
        labels = np.repeat([3, 8], 7)
        rng = np.random.default_rng(2)
        draws = [rng.choice(np.flatnonzero(labels == c), 7, replace=False) for c in (3, 8)]
        train, val = subsets.split_indices(labels, folds=3, fold=1, seed=2)
        # 7 into 3 folds: sizes 3, 2, 2; fold 1 = positions 3..4 of each class's draw.
        self.assertAllEqual(val, np.concatenate([d[3:5] for d in draws]))
        self.assertAllEqual(train, np.concatenate([np.r_[d[:3], d[5:]] for d in draws]))

    def test_errors_name_the_value_and_the_fix(self):
        smallest = min(self.sizes.values())
        cases = [
            (dict(per_class=smallest + 1), f"examples_per_class={smallest + 1}.*at most "
                                           f"{smallest}"),
            (dict(per_class=4, validation_fraction=0.1), "validation_fraction=0.1 leaves no"),
            (dict(per_class=4, validation_fraction=0.9), "leaves no training or no"),
            (dict(validation_fraction=1.0), r"not in \[0, 1\)"),
            (dict(per_class=-1), "examples_per_class=-1 is negative"),
            (dict(folds=3), "fold=None with folds=3.*0..2"),
            (dict(folds=3, fold=3), "fold=3 with folds=3"),
            (dict(folds=1, fold=0), "folds >= 2"),
            (dict(fold=0), "fold=0 without folds"),
            (dict(folds=2, fold=0, validation_fraction=0.2), "give one of them"),
            (dict(per_class=3, folds=4, fold=0), "folds=4 but class .* keeps only 3"),
        ]
        for kwargs, message in cases:
            with self.subTest(**kwargs), self.assertRaisesRegex(ValueError, message):
                subsets.split_indices(self.labels, **kwargs)


class ClassSubsetTest(tf.test.TestCase):

    def test_keeps_the_classes_relabelled_in_the_given_order(self):
        labels = np.array([4, 1, 7, 4, 2, 7, 1])
        indices, new = subsets.class_subset(labels, [7, 1])
        self.assertAllEqual(indices, [1, 2, 5, 6])
        self.assertAllEqual(new, [1, 0, 0, 1])
        self.assertEqual(new.dtype, np.int64)

    def test_errors_name_missing_and_duplicate_classes(self):
        labels = np.array([0, 1, 2])
        with self.assertRaisesRegex(ValueError, r"\[5\] have no example.*\[0, 1, 2\]"):
            subsets.class_subset(labels, [1, 5])
        with self.assertRaisesRegex(ValueError, r"lists \[1\] more than once"):
            subsets.class_subset(labels, [1, 2, 1])
        with self.assertRaisesRegex(ValueError, "classes is empty"):
            subsets.class_subset(labels, [])
        indices, new = subsets.class_subset(labels, [5, 2], allow_missing=True)
        self.assertAllEqual(indices, [2])
        self.assertAllEqual(new, [1])


if __name__ == "__main__":
    tf.test.main()
