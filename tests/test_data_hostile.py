"""Hostile inputs to the data package (issue 14, points 2 and 6), on trees written here:
stale prepared class-folder data (same folder name elsewhere, a file added or rewritten,
an unchanged tree reused), files left out counted by kind, an empty class folder, names
that are not UTF-8, a tree without test/, a truncated .gz IDX file."""
import gzip
import io
import os
import re
import struct
from unittest import mock

import numpy as np
import tensorflow as tf
from PIL import Image

from tftransfer.data import fashion_mnist, idx, pipeline
from tftransfer.data.builders import base
from tftransfer.data.builders.class_folders import ClassFolders
from tftransfer.training import config as config_lib
from tftransfer.training import data as training_data
from tests.fixtures import synthetic

RESIZE = 8


def write_tree(root, layout, seed=0):
    """Writes ``{split: {class: n}}`` tiny JPEGs as ``<root>/<split>/<class>/0000.jpg...``."""
    rng = np.random.default_rng(seed)
    for split, classes in layout.items():
        for cls, count in classes.items():
            synthetic.write_odd_images(os.path.join(root, split, cls), count, rng, 9, 13)


def prepare(root, data_dir):
    """The class_folders builder of ``root``, prepared in ``data_dir`` at ``RESIZE``."""
    return pipeline.prepare("class_folders", data_dir, root, resize=RESIZE)


def stored(builder, split="train"):
    """``{stored file name: label}`` of a prepared split."""
    return {e["image/filename"].decode(): int(e["label"])
            for e in builder.as_dataset(split).as_numpy_iterator()}


def png_bytes():
    """The bytes of a valid 5x5 PNG."""
    out = io.BytesIO()
    Image.new("RGB", (5, 5), (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


class StalePreparationTest(tf.test.TestCase):
    """Prepared class-folder data is keyed by the tree's files and the options."""

    def test_same_folder_name_in_another_parent_gets_its_own_preparation(self):
        tmp = self.get_temp_dir()
        first, second = os.path.join(tmp, "a", "photos"), os.path.join(tmp, "b", "photos")
        write_tree(first, {"train": {"cat": 2, "dog": 2}})
        write_tree(second, {"train": {"ant": 1, "bee": 1, "cow": 2}}, seed=1)
        data_dir = os.path.join(tmp, "data")
        prepare(first, data_dir)
        other = prepare(second, data_dir)
        self.assertEqual(other.info.features["label"].names, ["ant", "bee", "cow"])
        self.assertEqual(stored(other), {"train/ant/0000.jpg": 0, "train/bee/0000.jpg": 1,
                                         "train/cow/0000.jpg": 2, "train/cow/0001.jpg": 2})
        again = prepare(first, data_dir)  # The first one is still there, unchanged.
        self.assertEqual(again.info.features["label"].names, ["cat", "dog"])
        self.assertEqual(set(stored(again)), {"train/cat/0000.jpg", "train/cat/0001.jpg",
                                              "train/dog/0000.jpg", "train/dog/0001.jpg"})

    def test_image_added_is_prepared_anew(self):
        tmp = self.get_temp_dir()
        root, data_dir = os.path.join(tmp, "photos"), os.path.join(tmp, "data")
        write_tree(root, {"train": {"cat": 2, "dog": 1}})
        before = prepare(root, data_dir)
        synthetic.write_image(os.path.join(root, "train", "dog", "new.jpg"), 9, 9,
                              np.random.default_rng(5))
        after = pipeline.get_builder("class_folders", data_dir, root, resize=RESIZE)
        self.assertFalse(after.is_prepared())
        after = prepare(root, data_dir)
        self.assertNotEqual(after.data_dir, before.data_dir)
        self.assertIn("train/dog/new.jpg", stored(after))
        self.assertEqual(after.info.splits["train"].num_examples, 4)

    def test_image_rewritten_or_touched_is_prepared_anew(self):
        tmp = self.get_temp_dir()
        root, data_dir = os.path.join(tmp, "photos"), os.path.join(tmp, "data")
        write_tree(root, {"train": {"cat": 2}})
        path = os.path.join(root, "train", "cat", "0000.jpg")
        first = prepare(root, data_dir)
        size, mtime = os.path.getsize(path), os.stat(path).st_mtime_ns
        synthetic.write_image(path, 13, 11, np.random.default_rng(7))
        os.utime(path, ns=(mtime, mtime))  # Same mtime: the new size alone must show it.
        self.assertNotEqual(os.path.getsize(path), size)
        second = prepare(root, data_dir)
        self.assertNotEqual(second.data_dir, first.data_dir)
        image = {name: [e["image"] for e in b.as_dataset("train").as_numpy_iterator()
                        if e["image/filename"] == b"train/cat/0000.jpg"][0]
                 for name, b in (("first", first), ("second", second))}
        self.assertNotAllEqual(image["first"], image["second"])
        os.utime(path, ns=(mtime + 10 ** 9, mtime + 10 ** 9))  # Only touched.
        touched = pipeline.get_builder("class_folders", data_dir, root, resize=RESIZE)
        self.assertFalse(touched.is_prepared())

    def test_unchanged_tree_is_reused_and_options_are_part_of_the_key(self):
        tmp = self.get_temp_dir()
        root, data_dir = os.path.join(tmp, "photos"), os.path.join(tmp, "data")
        write_tree(root, {"train": {"cat": 2, "dog": 1}})
        first = prepare(root, data_dir)
        # Files that are not prepared do not change the key.
        with open(os.path.join(root, "train", "cat", "notes.txt"), "w") as f:
            f.write("not an image")
        with mock.patch.object(ClassFolders, "download_and_prepare") as rebuild:
            again = prepare(root, data_dir)
        rebuild.assert_not_called()
        self.assertEqual(again.data_dir, first.data_dir)
        self.assertEqual(stored(again), stored(first))
        other_size = pipeline.get_builder("class_folders", data_dir, root, resize=RESIZE + 2)
        aspect = pipeline.get_builder("class_folders", data_dir, root, resize=RESIZE,
                                      keep_aspect=True)
        self.assertLen({first.data_dir, other_size.data_dir, aspect.data_dir}, 3)


class SkippedFilesTest(tf.test.TestCase):

    def test_files_left_out_are_counted_by_kind_logged_and_kept(self):
        tmp = self.get_temp_dir()
        root = os.path.join(tmp, "photos")
        write_tree(root, {"train": {"cat": 2, "dog": 1}, "test": {"cat": 1, "dog": 1}})
        cat, dog = os.path.join(root, "train", "cat"), os.path.join(root, "train", "dog")
        extra = {os.path.join(cat, "notes.txt"): b"text", os.path.join(dog, "Thumbs.db"): b"x",
                 os.path.join(cat, ".hidden.jpg"): png_bytes(),
                 os.path.join(cat, ".DS_Store"): b"x",
                 os.path.join(cat, "sub", "deep.jpg"): png_bytes(),
                 os.path.join(cat, "sub", "deeper", "deepest.png"): png_bytes(),
                 os.path.join(root, "train", "README.md"): b"about",
                 os.path.join(root, "train", ".git", "config"): b"x",
                 os.path.join(root, "test", "dog", "corrupt.jpg"): b"\xff\xd8\xff nothing"}
        for path, data in extra.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        os.symlink(os.path.join(tmp, "nowhere.jpg"), os.path.join(dog, "gone.jpg"))
        data_dir = os.path.join(tmp, "data")
        with self.assertLogs("absl", "INFO") as logs:
            builder = prepare(root, data_dir)
        expected = {
            "train": {"unreadable": 1, "not_image": 2, "hidden": 3, "in_subfolder": 2,
                      "outside_class": 1},
            "test": {"unreadable": 1, "not_image": 0, "hidden": 0, "in_subfolder": 0,
                     "outside_class": 0}}
        self.assertEqual(base.skipped_files(builder), expected)
        summaries = [line for line in logs.output if re.search(r"\] split \w+: ", line)]
        self.assertLen(summaries, 2)
        self.assertIn("split train: 3 image(s) stored; skipped 9 file(s): 1 unreadable",
                      "\n".join(summaries))
        self.assertIn("test/dog/corrupt.jpg", "\n".join(logs.output))
        self.assertEqual(builder.info.splits["train"].num_examples, 3)
        reloaded = pipeline.get_builder("class_folders", data_dir, root, resize=RESIZE)
        self.assertTrue(reloaded.is_prepared())
        self.assertEqual(base.skipped_files(reloaded), expected)


class RefusedTreeTest(tf.test.TestCase):
    """Trees refused before anything is written, with every offending path named."""

    def test_empty_class_folder_is_an_error_naming_it(self):
        tmp = self.get_temp_dir()
        root, data_dir = os.path.join(tmp, "photos"), os.path.join(tmp, "data")
        write_tree(root, {"train": {"cat": 2}, "test": {"cat": 1}})
        os.makedirs(os.path.join(root, "train", "empty"))
        only_text = os.path.join(root, "test", "only_text")
        os.makedirs(only_text)
        with open(os.path.join(only_text, "notes.txt"), "w") as f:
            f.write("no image here")
        with self.assertRaises(ValueError) as caught:
            prepare(root, data_dir)
        message = str(caught.exception)
        self.assertIn(os.path.join(root, "train", "empty") + ": empty", message)
        self.assertIn(only_text + ": no image file (left out: 1 file(s): 1 without an image "
                      "extension)", message)
        self.assertFalse(os.path.exists(data_dir))

    def test_names_not_utf8_are_named_in_the_error(self):
        tmp = self.get_temp_dir()
        root, data_dir = os.path.join(tmp, "photos"), os.path.join(tmp, "data")
        write_tree(root, {"train": {"cat": 2}})
        cat = os.fsencode(os.path.join(root, "train", "cat"))
        bad_file = os.path.join(cat, b"bad\xff.png")
        bad_class = os.path.join(os.fsencode(os.path.join(root, "train")), b"caf\xe9")
        os.mkdir(bad_class)
        for path in (bad_file, os.path.join(bad_class, b"0000.png")):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, png_bytes())
            os.close(fd)
        with self.assertRaises(ValueError) as caught:
            prepare(root, data_dir)
        message = str(caught.exception)
        self.assertIn("not valid UTF-8", message)
        self.assertIn(repr(bad_file), message)
        self.assertIn(repr(bad_class), message)
        self.assertFalse(os.path.exists(data_dir))


class NoTestFolderTest(tf.test.TestCase):

    def test_tree_without_test_folder(self):
        tmp = self.get_temp_dir()
        root, data_dir = os.path.join(tmp, "photos"), os.path.join(tmp, "data")
        write_tree(root, {"train": {"cat": 2, "dog": 2}})
        args = dict(manual_dir=root, batch_size=2, crop_size=RESIZE, resize=RESIZE,
                    mean="imagenet")
        with self.assertRaises(ValueError) as caught:
            pipeline.load_datasets("class_folders", data_dir, **args)
        message = str(caught.exception)
        self.assertIn("no test/ split", message)
        self.assertIn(os.path.join(root, "test"), message)
        data = pipeline.load_datasets("class_folders", data_dir, require_test=False, **args)
        self.assertIsNone(data.test)
        self.assertEqual((data.num_train, data.num_test, data.num_classes), (4, 0, 2))
        self.assertEqual(next(iter(data.train))[0].shape, (2, RESIZE, RESIZE, 3))
        # The training driver gets the same message, not an AttributeError.
        config = config_lib.make(dataset="class_folders", data_dir=data_dir,
                                 manual_dir=root, resize=RESIZE, crop_size=RESIZE,
                                 batch_size=2, eval_batch_size=2, mean="imagenet")
        with self.assertRaisesRegex(ValueError, "no test/ split"):
            training_data.load(config)


def write_gz_idx(path, array):
    """Writes a uint8 ``array`` as a gzip-compressed IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


class TruncatedIdxTest(tf.test.TestCase):

    def test_truncated_gz_file_is_named_with_the_fix(self):
        directory = self.get_temp_dir()
        rng = np.random.default_rng(0)
        for prefix in ("train", "t10k"):
            write_gz_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"),
                         rng.integers(0, 256, (6, 28, 28), dtype=np.uint8))
            write_gz_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"),
                         np.arange(6, dtype=np.uint8))
        path = os.path.join(directory, "train-images-idx3-ubyte.gz")
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        with self.assertRaises(idx.IdxFormatError) as caught:
            idx.read_idx(path)
        self.assertIn(path, str(caught.exception))
        self.assertIn("truncated", str(caught.exception))
        with self.assertRaises(idx.IdxFormatError) as caught:
            fashion_mnist.load(directory, download=False)
        message = str(caught.exception)
        for expected in (path, "truncated", "apt-get install --reinstall dataset-fashion-mnist"):
            self.assertIn(expected, message)


if __name__ == "__main__":
    tf.test.main()
