"""Stanford Dogs 120: official training list; test set = ImageNet validation dogs.

The test set is the paper's (Li et al. 2018, Section 4.1): the Stanford Dogs test images
overlap the ImageNet training set, so the ImageNet validation images of the dog classes
are used instead.

Labels are the 120 Dogs classes in the order of the shipped mapping
``resources/stanford_dogs_synsets.tsv`` (sorted folder names ``n02085620-Chihuahua``...,
each with its WordNet synset and ILSVRC-2012 class index).

``test_set``:
- ``imagenet_val`` (default, the paper's): the ILSVRC-2012 validation images whose synset
  is one of the 120 (50 each, 6000), labelled through the mapping. Read from a local
  validation directory (flat ``ILSVRC2012_val_XXXXXXXX.JPEG``, labelled with tfds'
  ``validation_labels.txt``, or ``<synset>/<file>`` sub-folders) or a prepared tfds
  ``imagenet2012``.
- ``official``: the Stanford Dogs test list (8580 images, the authors' code's count;
  these overlap the ImageNet training set).
"""
import dataclasses
import os
import re

import tensorflow_datasets as tfds
from absl import logging

from tftransfer.data.builders.base import (ResizeConfig, ResizedImageBuilder,
                                           check_class_folders, choice_config, config_arg,
                                           file_reader, list_class_dirs, list_images,
                                           manual_dir, missing_error, resource_path)

INSTRUCTIONS = """
  Images/           extracted from images.tar
                    (http://vision.stanford.edu/aditya86/ImageNetDogs/): 120 folders
                    n02085620-Chihuahua/ ... with their .jpg files;
  train_list.mat    and
  test_list.mat     extracted from lists.tar (same page).
For the paper's test set also give the builder imagenet_val_dir=<folder of the 50000
ILSVRC-2012 validation JPEGs (ILSVRC2012_img_val.tar extracted)> or
imagenet_data_dir=<tfds data_dir holding a prepared imagenet2012>.
"""
TEST_SETS = ("imagenet_val", "official")
MANUAL_PATHS = ("Images", "train_list.mat", "test_list.mat")  # the manual files
SYNSETS_FILE = "stanford_dogs_synsets.tsv"
VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})\.jpe?g", re.IGNORECASE)


def dog_classes():
    """The shipped mapping: list of ``(dogs_folder, synset, ilsvrc_index)`` by Dogs label."""
    with open(resource_path(SYNSETS_FILE), encoding="utf-8") as f:
        text = f.read()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return [(folder, synset, int(index)) for _, folder, synset, index in rows]


def imagenet_validation_synsets():
    """Synset of each ILSVRC-2012 validation image (index 0 = ILSVRC2012_val_00000001)."""
    path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012",
                        "validation_labels.txt")
    with open(path, encoding="utf-8") as f:
        return f.read().split()


@dataclasses.dataclass(eq=False)
class StanfordDogsConfig(ResizeConfig):
    """``test_set``: ``imagenet_val`` (paper) or ``official``."""
    test_set: str = "imagenet_val"


def stanford_dogs_config(test_set="imagenet_val", resize=256, keep_aspect=False):
    """The config named like ``imagenet_val_square256``."""
    return choice_config(StanfordDogsConfig, "test_set", test_set, TEST_SETS, resize, keep_aspect)


def read_mat_list(path):
    """``file_list`` entries (``<folder>/<file>.jpg``) of a Stanford Dogs .mat list."""
    from scipy.io import loadmat  # Lazy: only Dogs needs SciPy.
    return [str(x) for x in loadmat(path, squeeze_me=True)["file_list"]]


class StanfordDogs120(ResizedImageBuilder):
    """Stanford Dogs 120, stored resized; test from ImageNet validation or the official list."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS
    BUILDER_CONFIGS = [stanford_dogs_config(t, keep_aspect=k) for t in TEST_SETS
                       for k in (False, True)]

    def __init__(self, *, imagenet_val_dir=None, imagenet_data_dir=None, **kwargs):
        """``imagenet_val_dir`` / ``imagenet_data_dir``: where the ImageNet validation
        images of the ``imagenet_val`` test set are (module docstring)."""
        self._imagenet_val_dir = imagenet_val_dir
        self._imagenet_data_dir = imagenet_data_dir
        super().__init__(**kwargs)

    @classmethod
    def builder_kwargs(cls, *, data_dir, manual_dir, resize, keep_aspect,
                       test_set="imagenet_val", imagenet_val_dir=None, imagenet_data_dir=None):
        del data_dir, manual_dir  # The manual directory is given when preparing.
        config = stanford_dogs_config(test_set, resize, keep_aspect)
        return {"config": config_arg(cls, config), "imagenet_val_dir": imagenet_val_dir,
                "imagenet_data_dir": imagenet_data_dir}

    def _class_label(self):
        return tfds.features.ClassLabel(names=[folder for folder, _, _ in dog_classes()])

    def _list_items(self, root, entries):
        label = self.info.features["label"].str2int
        images = os.path.join(root, "Images")
        return [(rel, rel, label(rel.split("/")[0]), file_reader(os.path.join(images, rel)))
                for rel in entries]

    def _imagenet_items(self):
        """ImageNet validation images of the 120 dog synsets, labelled by the mapping."""
        label = {synset: i for i, (_, synset, _) in enumerate(dog_classes())}
        if self._imagenet_val_dir:
            return self._imagenet_dir_items(self._imagenet_val_dir, label)
        if self._imagenet_data_dir:
            return self._imagenet_tfds_items(self._imagenet_data_dir, label)
        raise missing_error("ImageNet validation images (for the paper's Dogs test set)",
                            "imagenet_val_dir or imagenet_data_dir", INSTRUCTIONS)

    @staticmethod
    def _imagenet_dir_items(root, label):
        if not os.path.isdir(root):
            raise missing_error("ImageNet validation directory", root, INSTRUCTIONS)
        items = [(f"{s}/{f}", f"imagenet_val/{s}/{f}", label[s],
                  file_reader(os.path.join(root, s, f)))
                 for s in list_class_dirs(root) if s in label
                 for f in list_images(os.path.join(root, s))]  # <synset>/ sub-folders.
        synsets = imagenet_validation_synsets()
        for f in list_images(root):  # Flat layout: ILSVRC2012_val_00000001.JPEG ...
            match = VAL_NAME.fullmatch(f)
            if not match:
                logging.warning("[stanford_dogs120] ignoring %s: not an ILSVRC2012_val_ file "
                                "name", f)
                continue
            index = int(match.group(1)) - 1
            if synsets[index] in label:
                items.append((f, f"imagenet_val/{f}", label[synsets[index]],
                              file_reader(os.path.join(root, f))))
        return items

    @staticmethod
    def _imagenet_tfds_items(data_dir, label):
        builder = tfds.builder("imagenet2012", data_dir=data_dir)
        if not builder.is_prepared():
            raise missing_error("Prepared tfds imagenet2012", builder.data_dir,
                                "  a tfds imagenet2012 built with `tfds build imagenet2012`.")
        return _tfds_dog_items(builder, label)

    def _split_generators(self, dl_manager):
        root = manual_dir(dl_manager, "Stanford Dogs", INSTRUCTIONS, MANUAL_PATHS)
        check_class_folders(os.path.join(root, "Images"), self.info.features["label"].names,
                            "Stanford Dogs", f"resources/{SYNSETS_FILE}")
        train = self._list_items(root, read_mat_list(os.path.join(root, "train_list.mat")))
        if self.builder_config.test_set == "official":
            test = self._list_items(root, read_mat_list(os.path.join(root, "test_list.mat")))
        else:
            test = self._imagenet_items()
        return self._items_split({"train": train, "test": test})


def _tfds_dog_items(builder, label):
    """Streams the dog images of a prepared tfds imagenet2012 validation split."""
    names = builder.info.features["label"].names
    ds = builder.as_dataset("validation", decoders={"image": tfds.decode.SkipDecoding()})
    for ex in ds.as_numpy_iterator():
        synset = names[int(ex["label"])]
        if synset in label:
            name = ex["file_name"].decode()
            yield name, f"imagenet_val/{name}", label[synset], (lambda data=ex["image"]: data)
