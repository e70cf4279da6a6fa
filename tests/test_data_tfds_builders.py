"""Dummy-data builder tests in the style of tfds' ``DatasetBuilderTestCase`` (which needs
``dill``, not a dependency here): on a dummy manual directory written here, each builder
is registered with tfds, prepares through ``download_and_prepare(download_config=...)``,
gives the expected split sizes with examples of the declared features, puts no example
in two splits, and leaves the manual directory exactly as it was."""
import hashlib
import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from scipy.io import savemat

from tftransfer.data.builders.caltech256 import Caltech256, caltech256_config
from tftransfer.data.builders.class_folders import ClassFolders
from tftransfer.data.builders.mit_indoor67 import MitIndoor67, mit_indoor67_config
from tftransfer.data.builders.stanford_dogs120 import (StanfordDogs120, dog_classes,
                                                       stanford_dogs_config)
from tests.fixtures import synthetic
from tests.test_data_builders import listing

RESIZE = 10


class DummyDataTestCase(tf.test.TestCase):
    """Subclasses set ``DATASET_CLASS``, ``SPLITS`` ({split: examples}), the configs to
    prepare (``BUILDER_CONFIG_NAMES_TO_TEST``) and ``write_dummy_data``."""

    DATASET_CLASS = None
    SPLITS = {}
    BUILDER_CONFIG_NAMES_TO_TEST = [None]

    @classmethod
    def write_dummy_data(cls, root, rng):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.EXAMPLE_DIR = tempfile.mkdtemp()
        cls.write_dummy_data(cls.EXAMPLE_DIR, np.random.default_rng(0))

    def _make_builder(self, config=None):
        return tfds.builder(self.DATASET_CLASS.name, config=config,
                            data_dir=self.get_temp_dir())

    def test_registered(self):
        self.assertIn(self.DATASET_CLASS.name, tfds.list_builders(with_community_datasets=False))
        self.assertIs(tfds.builder_cls(self.DATASET_CLASS.name), self.DATASET_CLASS)
        self.assertTrue(self.DATASET_CLASS.MANUAL_DOWNLOAD_INSTRUCTIONS.strip())

    def test_download_and_prepare_as_dataset(self):
        for config in self.BUILDER_CONFIG_NAMES_TO_TEST:
            before = listing(self.EXAMPLE_DIR)
            builder = self._make_builder(config)
            self.assertFalse(builder.is_prepared())
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=self.EXAMPLE_DIR))
            self.assertEqual(listing(self.EXAMPLE_DIR), before)
            self.assertEqual({s: i.num_examples for s, i in builder.info.splits.items()},
                             self.SPLITS)
            num_classes = builder.info.features["label"].num_classes
            digests = {}
            for split in self.SPLITS:
                examples = list(builder.as_dataset(split).as_numpy_iterator())
                self.assertLen(examples, self.SPLITS[split])
                for example in examples:
                    self.assertEqual(example["image"].dtype, np.uint8)
                    self.assertEqual(example["image"].shape[2], 3)
                    self.assertEqual(min(example["image"].shape[:2]), RESIZE)
                    self.assertAllInRange(example["label"], 0, num_classes - 1)
                digests[split] = {hashlib.sha256(e["image"].tobytes()).hexdigest()
                                  for e in examples}
            splits = sorted(digests)
            for i, first in enumerate(splits):
                for second in splits[i + 1:]:
                    self.assertEmpty(digests[first] & digests[second], (first, second))


class Caltech256DummyTest(DummyDataTestCase):
    DATASET_CLASS = Caltech256
    BUILDER_CONFIG_NAMES_TO_TEST = [caltech256_config(2, RESIZE, test_per_class=1)]
    SPLITS = {"train": 3 * 2, "test": 3 * 1}

    @classmethod
    def write_dummy_data(cls, root, rng):
        for cls_name, count in (("001.ak47", 3), ("002.american-flag", 4), ("257.clutter", 5)):
            synthetic.write_odd_images(os.path.join(root, "256_ObjectCategories", cls_name),
                                       count, rng, 9, 13)


class MitIndoor67DummyTest(DummyDataTestCase):
    DATASET_CLASS = MitIndoor67
    BUILDER_CONFIG_NAMES_TO_TEST = [mit_indoor67_config(RESIZE, keep_aspect=True)]
    SPLITS = {"train": 3, "test": 2}

    @classmethod
    def write_dummy_data(cls, root, rng):
        for cls_name in ("bar", "winecellar"):
            synthetic.write_odd_images(os.path.join(root, "Images", cls_name), 3, rng, 9, 13)
        lists = {"TrainImages.txt": ["bar/0000.jpg", "bar/0001.jpg", "winecellar/0000.jpg"],
                 "TestImages.txt": ["bar/0002.jpg", "winecellar/0002.jpg"]}
        for name, lines in lists.items():
            with open(os.path.join(root, name), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


class StanfordDogs120DummyTest(DummyDataTestCase):
    DATASET_CLASS = StanfordDogs120
    BUILDER_CONFIG_NAMES_TO_TEST = [stanford_dogs_config("official", RESIZE)]
    SPLITS = {"train": 4, "test": 2}

    @classmethod
    def write_dummy_data(cls, root, rng):
        train, test = [], []
        for folder, _, _ in (dog_classes()[0], dog_classes()[-1]):
            names = synthetic.write_odd_images(os.path.join(root, "Images", folder), 3, rng,
                                               9, 13)
            train += [f"{folder}/{n}" for n in names[:2]]
            test.append(f"{folder}/{names[2]}")
        for name, files in (("train_list.mat", train), ("test_list.mat", test)):
            savemat(os.path.join(root, name), {"file_list": np.array(files, dtype=object)})


class ClassFoldersDummyTest(DummyDataTestCase):
    DATASET_CLASS = ClassFolders
    SPLITS = {"train": 5, "validation": 2, "test": 3}

    @classmethod
    def write_dummy_data(cls, root, rng):
        for split, counts in (("train", (2, 3)), ("validation", (1, 1)), ("test", (1, 2))):
            for cls_name, count in zip(("ants", "bees"), counts):
                synthetic.write_odd_images(os.path.join(root, split, cls_name), count, rng,
                                           9, 13)

    def _make_builder(self, config=None):
        # The tree is listed at construction (class names, fingerprint): no config to pick.
        del config
        return tfds.builder("class_folders", root=self.EXAMPLE_DIR,
                            data_dir=self.get_temp_dir(), resize=RESIZE)


del DummyDataTestCase  # Abstract: not collected on its own.

if __name__ == "__main__":
    tf.test.main()
