"""IDX reader and the Fashion-MNIST locator, on files the tests write."""
import gzip
import os
import struct
from unittest import mock

import numpy as np
import tensorflow as tf

from tftransfer.data import fashion_mnist, idx


def write_idx(path, array, type_code=0x08):
    """Writes ``array`` in IDX layout, from the format's definition."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[type_code]
    payload = header + array.astype(dtype).tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_fake_fashion(directory, n_train=12, n_test=6, gz=True):
    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"), images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"), labels)
        arrays[prefix] = (images, labels)
    return arrays


class IdxTest(tf.test.TestCase):

    def test_round_trip_plain_and_gzip_and_types(self):
        tmp = self.get_temp_dir()
        rng = np.random.default_rng(1)
        cases = [(rng.integers(0, 256, (3, 4, 5)), 0x08), (rng.integers(-300, 300, (7,)), 0x0B),
                 (rng.normal(size=(2, 3)).astype(np.float32), 0x0D)]
        for i, (array, code) in enumerate(cases):
            for suffix in ("", ".gz"):
                path = os.path.join(tmp, f"a{i}{suffix}")
                write_idx(path, array, code)
                got = idx.read_idx(path)
                self.assertEqual(got.shape, array.shape)
                self.assertAllEqual(got, array.astype(got.dtype))

    def test_bad_files_are_reported(self):
        tmp = self.get_temp_dir()
        bad = os.path.join(tmp, "bad")
        with open(bad, "wb") as f:
            f.write(b"\x89PNG....")
        with self.assertRaisesRegex(idx.IdxFormatError, "not an IDX file"):
            idx.read_idx(bad)
        truncated = os.path.join(tmp, "trunc")
        write_idx(truncated, np.zeros((4, 4), np.uint8))
        with open(truncated, "r+b") as f:
            f.truncate(20)
        with self.assertRaisesRegex(idx.IdxFormatError, "truncated"):
            idx.read_idx(truncated)

    def test_load_split_pairs_images_and_labels(self):
        tmp = os.path.join(self.get_temp_dir(), "fm")
        arrays = write_fake_fashion(tmp, gz=False)
        images, labels = idx.load_split(tmp, "test")
        self.assertAllEqual(images, arrays["t10k"][0])
        self.assertAllEqual(labels, arrays["t10k"][1])
        self.assertEqual(labels.dtype, np.int64)
        with self.assertRaisesRegex(FileNotFoundError, "no train images or labels"):
            idx.load_split(self.get_temp_dir(), "train")


class FashionMnistTest(tf.test.TestCase):

    def test_data_dir_comes_first(self):
        tmp = os.path.join(self.get_temp_dir(), "mine")
        arrays = write_fake_fashion(tmp)
        data = fashion_mnist.load(tmp, download=False)
        self.assertAllEqual(data["train"][0], arrays["train"][0])
        self.assertEqual(data["test"][0].shape, (6, 28, 28))

    def test_keras_cache_then_debian(self):
        home = os.path.join(self.get_temp_dir(), "keras_home")
        with mock.patch.dict(os.environ, {"KERAS_HOME": home}):
            write_fake_fashion(fashion_mnist.keras_cache_dir())
            self.assertEqual(fashion_mnist.find(None, download=False),
                             fashion_mnist.keras_cache_dir())

    def test_error_lists_every_place_and_the_fix(self):
        empty = os.path.join(self.get_temp_dir(), "empty")
        with mock.patch.dict(os.environ, {"KERAS_HOME": empty}), \
                mock.patch.object(fashion_mnist, "DEBIAN_DIR", os.path.join(empty, "deb")), \
                mock.patch.object(fashion_mnist, "_download",
                                  side_effect=OSError("network is unreachable")):
            with self.assertRaises(FileNotFoundError) as caught:
                fashion_mnist.find(None)
        message = str(caught.exception)
        for expected in ("--data_dir", "Keras cache", "Debian package", "network is unreachable",
                         "apt-get install dataset-fashion-mnist"):
            self.assertIn(expected, message)

    def test_a_given_data_dir_is_the_only_place_looked(self):
        """A data_dir without the files is an error even when the Keras cache has them."""
        home = os.path.join(self.get_temp_dir(), "cached_home")
        missing = os.path.join(self.get_temp_dir(), "not_there")
        with mock.patch.dict(os.environ, {"KERAS_HOME": home}):
            write_fake_fashion(fashion_mnist.keras_cache_dir())
            with self.assertRaisesRegex(FileNotFoundError, "not_there does not exist"):
                fashion_mnist.find(missing, download=False)

    def test_select_classes_relabels_in_order(self):
        images = np.arange(10)[:, None, None] * np.ones((10, 2, 2))
        labels = np.array([5, 6, 7, 8, 9, 0, 1, 2, 3, 4])
        x, y = fashion_mnist.select_classes(images, labels, [7, 5, 9])
        self.assertAllEqual(y, [1, 0, 2])
        self.assertAllEqual(x[:, 0, 0], [0, 2, 4])


if __name__ == "__main__":
    tf.test.main()
