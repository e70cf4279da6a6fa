"""Every builder, built from tiny fake datasets written here (odd sizes, grey, CMYK,
PNG named .jpg, a corrupt file): split sizes, labels, seeds, Dogs mapping, skip reports,
stored pixels against PIL + NumPy, and the manual directory left untouched."""
import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from scipy.io import savemat

from tftransfer.data import pipeline
from tftransfer.data.builders.caltech256 import Caltech256, caltech256_config
from tftransfer.data.builders.mit_indoor67 import MitIndoor67, mit_indoor67_config
from tftransfer.data.builders.stanford_dogs120 import StanfordDogs120, stanford_dogs_config
from tests.fixtures import synthetic

RESIZE = 12
CHIHUAHUA, SPANIEL, HUNTING = ("n02085620-Chihuahua", "n02085782-Japanese_spaniel",
                               "n02116738-African_hunting_dog")


def write_special_images(directory, rng):
    """A greyscale, a CMYK, a PNG named .jpg and a corrupt file; returns their names."""
    synthetic.write_image(os.path.join(directory, "grey.jpg"), 15, 9, rng, "L")
    synthetic.write_image(os.path.join(directory, "cmyk.jpg"), 11, 17, rng, "CMYK")
    synthetic.write_image(os.path.join(directory, "png.jpg"), 19, 13, rng, "RGB", "PNG")
    synthetic.write_corrupt(os.path.join(directory, "corrupt.jpg"))
    return ["grey.jpg", "cmyk.jpg", "png.jpg", "corrupt.jpg"]


def listing(directory):
    """``{relative path: (size, mtime_ns)}`` of every file and folder under ``directory``."""
    out = {}
    for parent, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(parent, name)
            stat = os.lstat(path)
            out[os.path.relpath(path, directory)] = (stat.st_size, stat.st_mtime_ns)
    return out


def build(test_case, builder, manual_dir):
    """download_and_prepare from ``manual_dir`` (tfds' DownloadConfig), returning what was
    logged (absl, INFO and above); checks that ``manual_dir`` was left as it was."""
    before = listing(manual_dir)
    with test_case.assertLogs("absl", "INFO") as logs:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    test_case.assertEqual(listing(manual_dir), before)
    return "\n".join(logs.output)


def split_arrays(builder, split):
    """(images, labels, filenames) of a prepared split."""
    examples = list(builder.as_dataset(split).as_numpy_iterator())
    return ([e["image"] for e in examples], np.array([e["label"] for e in examples]),
            [e["image/filename"].decode() for e in examples])


class CaltechTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(0)
        self.classes = ["001.ak47", "002.american-flag", "003.backpack"]
        for manual in ("manual_a", "manual_b"):
            root = os.path.join(self.tmp, manual, "256_ObjectCategories")
            rng = np.random.default_rng(0)
            for cls in self.classes[:2]:
                synthetic.write_odd_images(os.path.join(root, cls), 8, rng)
            # Exactly train + test images: all are drawn, the special ones included.
            synthetic.write_odd_images(os.path.join(root, "003.backpack"), 1, rng)
            write_special_images(os.path.join(root, "003.backpack"), rng)

    def _builder(self, manual="manual_a", seed=0):
        return tfds.builder(
            "caltech256", config=caltech256_config(3, RESIZE, seed=seed, test_per_class=2),
            data_dir=os.path.join(self.tmp, "data_" + manual))

    def test_split_sizes_labels_and_corrupt_file_skipped(self):
        builder = self._builder()
        self.assertIsInstance(builder, Caltech256)
        printed = build(self, builder, os.path.join(self.tmp, "manual_a"))
        self.assertIn("003.backpack/corrupt.jpg", printed)
        self.assertRegex(printed, r"skipped 1 file\(s\): 1 unreadable")
        train_images, train_labels, train_names = split_arrays(builder, "train")
        test_images, test_labels, test_names = split_arrays(builder, "test")
        images, names = train_images + test_images, train_names + test_names
        labels = np.concatenate([train_labels, test_labels])
        counts = {s: builder.info.splits[s].num_examples for s in ("train", "test")}
        self.assertEqual(counts["train"] + counts["test"], 3 * 5 - 1)
        self.assertNotIn("003.backpack/corrupt.jpg", names)
        self.assertEqual(set(labels.tolist()), {0, 1, 2})
        names_file = open(os.path.join(os.path.dirname(pipeline.__file__), "resources",
                                       "caltech256_classes.txt")).read().split()
        self.assertEqual(builder.info.features["label"].names, names_file)
        self.assertLen(names_file, 257)
        self.assertEqual(names_file[:3], self.classes)
        self.assertEqual(names_file[-1], "257.clutter")
        for image in images:
            self.assertEqual(image.shape, (RESIZE, RESIZE, 3))
            self.assertEqual(image.dtype, np.uint8)
        split_dir = os.path.join(builder.data_dir, "splits")  # Next to the stored data.
        train = open(os.path.join(split_dir, "3_2_seed0_train.txt")).read().split()
        test = open(os.path.join(split_dir, "3_2_seed0_test.txt")).read().split()
        self.assertEqual(len(train), 9)
        self.assertEqual(len(test), 6)
        self.assertEmpty(set(train) & set(test))
        for cls in self.classes:
            self.assertLen([f for f in train if f.startswith(cls + "/")], 3)
            self.assertLen([f for f in test if f.startswith(cls + "/")], 2)

    def test_same_seed_same_split_other_seed_other_split(self):
        manual_a, manual_b = os.path.join(self.tmp, "manual_a"), os.path.join(self.tmp, "manual_b")
        first = self._builder("manual_a", seed=0).split_files(manual_a)
        again = self._builder("manual_b", seed=0).split_files(manual_b)  # A fresh copy.
        other = self._builder("manual_b", seed=1).split_files(manual_b)
        self.assertEqual(first, again)
        self.assertNotEqual(first[0], other[0])
        self.assertEqual(sorted(os.listdir(manual_b)), ["256_ObjectCategories"])

    def test_split_files_in_manual_dir_are_reused(self):
        manual = os.path.join(self.tmp, "manual_b")
        shared = os.path.join(manual, "tftransfer_splits")
        os.makedirs(shared)
        train = [f"{c}/0000.jpg" for c in self.classes[:2]]
        test = ["001.ak47/0001.jpg", "003.backpack/grey.jpg"]
        for split, names in (("train", train), ("test", test)):
            with open(os.path.join(shared, f"3_2_seed0_{split}.txt"), "w") as f:
                f.write("\n".join(names) + "\n")
        builder = self._builder("manual_b")
        build(self, builder, manual)
        self.assertCountEqual(split_arrays(builder, "train")[2], train)
        self.assertCountEqual(split_arrays(builder, "test")[2], test)
        self.assertEqual(open(os.path.join(builder.data_dir, "splits",
                                           "3_2_seed0_train.txt")).read().split(), train)

    def test_folder_outside_the_official_list_is_refused(self):
        manual = os.path.join(self.tmp, "manual_b")
        os.rename(os.path.join(manual, "256_ObjectCategories", "002.american-flag"),
                  os.path.join(manual, "256_ObjectCategories", "002.bat"))
        builder = self._builder("manual_b")
        with self.assertRaisesRegex(ValueError, r"\['002.bat'\].*caltech256_classes.txt"):
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "data_manual_b", "caltech256",
                                                     "3_square12_seed0", "1.0.0")))

    def test_missing_manual_dir_names_directory_and_contents(self):
        data_dir = os.path.join(self.tmp, "nothing")
        with self.assertRaises(FileNotFoundError) as ctx:
            pipeline.prepare("caltech256_30", data_dir)
        message = str(ctx.exception)
        self.assertIn(pipeline.default_manual_dir(data_dir, "caltech256_30"), message)
        self.assertIn("256_ObjectCategories", message)


class IndoorTest(tf.test.TestCase):

    def test_official_lists_define_the_splits(self):
        tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(1)
        images = os.path.join(tmp, "manual", "Images")
        for cls in ("bar", "kitchen"):
            synthetic.write_odd_images(os.path.join(images, cls), 4, rng)
        write_special_images(os.path.join(images, "kitchen"), rng)
        train = ["bar/0000.jpg", "bar/0001.jpg", "kitchen/0000.jpg", "kitchen/grey.jpg",
                 "kitchen/cmyk.jpg", "kitchen/corrupt.jpg"]
        test = ["bar/0002.jpg", "kitchen/png.jpg"]  # bar/0003, kitchen/0001.. unlisted.
        for name, lines in (("TrainImages.txt", train), ("TestImages.txt", test)):
            with open(os.path.join(tmp, "manual", name), "w") as f:
                f.write("\n".join(lines) + "\n")
        builder = tfds.builder("mit_indoor67", config=mit_indoor67_config(RESIZE, True),
                               data_dir=os.path.join(tmp, "data"))
        self.assertIsInstance(builder, MitIndoor67)
        printed = build(self, builder, os.path.join(tmp, "manual"))
        self.assertIn("kitchen/corrupt.jpg", printed)
        _, train_labels, train_names = split_arrays(builder, "train")
        test_images, test_labels, test_names = split_arrays(builder, "test")
        self.assertCountEqual(train_names, [n for n in train if "corrupt" not in n])
        self.assertCountEqual(test_names, test)
        names = builder.info.features["label"].names  # The official 67, sorted.
        self.assertLen(names, 67)
        self.assertEqual(names, sorted(names))
        bar, kitchen = names.index("bar"), names.index("kitchen")
        self.assertEqual((bar, kitchen), (4, 37))
        self.assertCountEqual(train_labels.tolist(), [bar, bar, kitchen, kitchen, kitchen])
        self.assertCountEqual(test_labels.tolist(), [bar, kitchen])
        png = test_images[test_names.index("kitchen/png.jpg")]  # 19 x 13: shorter side 12.
        self.assertEqual(png.shape, (int(round(19 * RESIZE / 13)), RESIZE, 3))


class DogsTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(2)
        self.manual = os.path.join(self.tmp, "manual")
        train, test = [], []
        for folder in (CHIHUAHUA, SPANIEL, HUNTING):
            names = synthetic.write_odd_images(os.path.join(self.manual, "Images", folder), 3, rng)
            train += [f"{folder}/{n}" for n in names[:2]]
            test += [f"{folder}/{names[2]}"]
        write_special_images(os.path.join(self.manual, "Images", SPANIEL), rng)
        train += [f"{SPANIEL}/cmyk.jpg", f"{SPANIEL}/corrupt.jpg"]
        for name, files in (("train_list.mat", train), ("test_list.mat", test)):
            savemat(os.path.join(self.manual, name),
                    {"file_list": np.array(files, dtype=object)})
        self.train_count = len(train) - 1  # The corrupt one is skipped.
        self.official_test = test
        # Fake ImageNet validation directory: flat official names + one synset folder.
        validation = open(os.path.join(os.path.dirname(tfds.__file__), "datasets",
                                       "imagenet2012", "validation_labels.txt")).read().split()
        self.val_dir = os.path.join(self.tmp, "imagenet_val")
        self.expected_test = {}
        wanted = {"n02085620": 2, "n02116738": 1, "n01440764": 2}  # The last is a tench.
        for synset, count in wanted.items():
            for index in [i for i, s in enumerate(validation) if s == synset][:count]:
                name = f"ILSVRC2012_val_{index + 1:08d}.JPEG"
                synthetic.write_image(os.path.join(self.val_dir, name), 14, 10, rng)
                self.expected_test[name] = synset
        synthetic.write_image(os.path.join(self.val_dir, "n02085782", "a.JPEG"), 9, 16, rng)
        self.expected_test["n02085782/a.JPEG"] = "n02085782"

    def test_paper_test_set_is_imagenet_validation_dogs(self):
        builder = tfds.builder("stanford_dogs120",
                               config=stanford_dogs_config("imagenet_val", RESIZE),
                               data_dir=os.path.join(self.tmp, "data"),
                               imagenet_val_dir=self.val_dir)
        self.assertIsInstance(builder, StanfordDogs120)
        printed = build(self, builder, self.manual)
        self.assertIn(f"{SPANIEL}/corrupt.jpg", printed)
        self.assertEqual(builder.info.splits["train"].num_examples, self.train_count)
        _, labels, names = split_arrays(builder, "test")
        # Dogs labels: sorted folder order of the 120 classes; Chihuahua first, African
        # hunting dog last, Japanese spaniel second. The tench is not a Dogs class.
        expected_label = {"n02085620": 0, "n02085782": 1, "n02116738": 119}
        expected = {f"imagenet_val/{k}": expected_label[s]
                    for k, s in self.expected_test.items() if s in expected_label}
        self.assertEqual(dict(zip(names, labels.tolist())), expected)
        self.assertEqual(builder.info.features["label"].num_classes, 120)
        self.assertEqual(builder.info.features["label"].names[119], HUNTING)

    def test_official_test_list(self):
        builder = tfds.builder("stanford_dogs120", config=stanford_dogs_config("official", RESIZE),
                               data_dir=os.path.join(self.tmp, "data"))
        build(self, builder, self.manual)
        _, labels, names = split_arrays(builder, "test")
        self.assertCountEqual(names, self.official_test)
        self.assertCountEqual(labels.tolist(), [0, 1, 119])

    def test_shipped_mapping_matches_imagenet_labels(self):
        path = os.path.join(os.path.dirname(pipeline.__file__), "resources",
                            "stanford_dogs_synsets.tsv")
        rows = [l.split("\t") for l in open(path).read().splitlines() if not l.startswith("#")]
        ilsvrc = open(os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012",
                                   "labels.txt")).read().split()
        self.assertLen(rows, 120)
        self.assertEqual([r[1] for r in rows], sorted(r[1] for r in rows))
        for label, folder, synset, index in rows:
            self.assertTrue(folder.startswith(synset + "-"))
            self.assertEqual(ilsvrc[int(index)], synset)
        validation = open(os.path.join(os.path.dirname(tfds.__file__), "datasets",
                                       "imagenet2012", "validation_labels.txt")).read().split()
        dogs = {r[2] for r in rows}
        self.assertEqual(sum(s in dogs for s in validation), 120 * 50)  # The paper's 6000.

    def test_missing_imagenet_directory_is_reported(self):
        builder = tfds.builder("stanford_dogs120",
                               config=stanford_dogs_config("imagenet_val", RESIZE),
                               data_dir=os.path.join(self.tmp, "data2"),
                               imagenet_val_dir=os.path.join(self.tmp, "absent"))
        with self.assertRaisesRegex(FileNotFoundError, "absent"):
            build(self, builder, self.manual)


class ClassFoldersAndSourcesTest(tf.test.TestCase):

    def test_class_folders_with_special_images(self):
        tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(3)
        root = os.path.join(tmp, "my_set")
        for split, count in (("train", 3), ("test", 2)):
            for cls in ("cats", "dogs"):
                synthetic.write_odd_images(os.path.join(root, split, cls), count, rng)
        write_special_images(os.path.join(root, "train", "dogs"), rng)
        builder = pipeline.get_builder("class_folders", os.path.join(tmp, "data"), root,
                                       resize=RESIZE)
        printed = build(self, builder, root)
        self.assertIn("train/dogs/corrupt.jpg", printed)
        self.assertRegex(printed, r"split train: 9 image\(s\) stored; skipped 1 file\(s\): "
                                  r"1 unreadable")
        images, labels, names = split_arrays(builder, "train")
        self.assertLen(names, 6 + 3)
        self.assertEqual(builder.info.splits["test"].num_examples, 4)
        self.assertAllInRange(labels, 0, 1)
        grey = images[names.index("train/dogs/grey.jpg")]
        self.assertAllEqual(grey[..., 0], grey[..., 2])
        # Every stored image is the file decoded by PIL, resized to RESIZE x RESIZE
        # (bilinear, antialiased), rounded and clipped to uint8; labels by sorted class.
        for image, label, name in zip(images, labels, names):
            with Image.open(os.path.join(root, name)) as img:
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
            expected = tf.image.resize(rgb, (RESIZE, RESIZE), antialias=True).numpy()
            self.assertAllEqual(image, np.clip(np.round(expected), 0, 255).astype(np.uint8))
            self.assertEqual(label, ["cats", "dogs"].index(name.split("/")[1]))

    def test_class_folders_refuses_another_tree_as_manual_dir(self):
        tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(4)
        for tree, count in (("first", 2), ("second", 3)):
            synthetic.write_odd_images(os.path.join(tmp, tree, "train", "cat"), count, rng)
        builder = tfds.builder("class_folders", root=os.path.join(tmp, "first"),
                               data_dir=os.path.join(tmp, "data"), resize=RESIZE)
        with self.assertRaisesRegex(ValueError, "not the tree"):
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                manual_dir=os.path.join(tmp, "second")))
        self.assertFalse(builder.is_prepared())
        self.assertFalse(os.path.exists(builder.data_dir))

    def test_missing_tfds_sources_name_directory_and_contents(self):
        tmp = tempfile.mkdtemp()
        with self.assertRaises(FileNotFoundError) as ctx:
            pipeline.prepare("food101", tmp)
        self.assertIn(os.path.join(tmp, "food101"), str(ctx.exception))
        self.assertIn("tfds build food101", str(ctx.exception))
        with self.assertRaisesRegex(FileNotFoundError, "ILSVRC2012_img_val.tar"):
            pipeline.prepare("imagenet2012", tmp, manual_dir=os.path.join(tmp, "ilsvrc"))


if __name__ == "__main__":
    tf.test.main()
