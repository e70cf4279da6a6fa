"""Resuming the training input in O(1): the stream started at batch k is bitwise the tail of
the stream from 0 (in-memory arrays, the prepared store's random-access copy, square and
variable-size, with a selection), reads none of the first k batches, and the default
in-memory stream is the former formula's."""
import contextlib
import io
import os
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from tests.fixtures import synthetic
from tftransfer.data import pipeline, preprocessing, random_access, stream
from tftransfer.training import data as data_lib

RESIZE, CROP, BATCH = 12, 8, 4
FAR = 10 ** 9  # a start batch far beyond anything a test reads


def former_stateless_batches(images, labels, batch_size, seed, crop, jitter):
    """The in-memory stream as written before it could start at a batch (3 channels)."""
    n = len(labels)
    images, labels = tf.constant(images), tf.constant(labels)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e]))
        return tf.data.Dataset.from_tensor_slices(order)

    def example(position, index):
        image = tf.gather(images, index)
        split = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), position]), 2)
        return (preprocessing.random_crop_mirror(image, split[0], crop, True),
                preprocessing.sample_jitter(split[1]), tf.gather(labels, index))

    ds = tf.data.Dataset.range(2 ** 62).flat_map(epoch).enumerate().map(example)
    return ds.batch(batch_size, drop_remainder=True).map(
        lambda x, p, y: (preprocessing.finish_batch(x, p, (0.0, 0.0, 0.0), jitter), y))


def batches(dataset, count):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]


@contextlib.contextmanager
def augmented_positions():
    """Records the stream position of every example augmented while active (a side effect
    of :func:`tftransfer.data.stream.augment` at run time)."""
    seen, original = [], stream.augment

    def counted(image, position, *args, **kwargs):
        def note(p):
            seen.append(int(p))
            return p
        position = tf.ensure_shape(tf.py_function(note, [position], tf.int64), [])
        return original(image, position, *args, **kwargs)

    with mock.patch.object(stream, "augment", counted):
        yield seen


class InMemoryStreamTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (10, RESIZE, RESIZE, 3)).astype(np.uint8)
        self.labels = np.arange(10, dtype=np.int64) % 3

    def _stream(self, start_batch=0, **kwargs):
        return data_lib.stateless_batches(self.images, self.labels, BATCH, 7, CROP, True,
                                          start_batch=start_batch, **kwargs)

    def test_default_stream_is_the_former_formula(self):
        got = batches(self._stream(), 6)
        expected = batches(former_stateless_batches(self.images, self.labels, BATCH, 7, CROP,
                                                    True), 6)
        for (x, y), (ex, ey) in zip(got, expected):
            self.assertAllEqual(x, ex)
            self.assertAllEqual(y, ey)

    def test_started_at_k_is_the_tail_of_the_stream_from_zero(self):
        whole = batches(self._stream(), 9)
        for k in (1, 2, 3, 5):  # batch 2 starts mid-epoch 0, 3 mid-epoch 1 (n=10, B=4)
            for (x, y), (ex, ey) in zip(batches(self._stream(k), 9 - k), whole[k:]):
                self.assertAllEqual(x, ex)
                self.assertAllEqual(y, ey)
        for kwargs in ({"pad": 2}, {"mirror": False}):  # the other branches
            whole = batches(self._stream(**kwargs), 5)
            for (x, _), (ex, _) in zip(batches(self._stream(3, **kwargs), 2), whole[3:]):
                self.assertAllEqual(x, ex)

    def test_starting_far_reads_none_of_the_first_batches(self):
        k = 10 ** 9
        with augmented_positions() as seen:
            next(iter(self._stream(k)))
        self.assertNotEmpty(seen)
        self.assertGreaterEqual(min(seen), k * BATCH)

    def test_input_data_train_at_uses_the_start(self):
        data = data_lib.InputData(None, None, 3, 10, 0, (CROP, CROP, 3), None, "test",
                                  train_from=lambda start: self._stream(start))
        self.assertAllEqual(next(iter(data.train_at(4)))[0], batches(self._stream(), 5)[4][0])
        with self.assertRaisesRegex(ValueError, "negative"):
            stream.positions(10, 0, BATCH, -1)


class StoreStreamTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(1)
        cls.root = os.path.join(cls.tmp, "toy")
        for name in ("a", "b", "c"):
            synthetic.write_odd_images(os.path.join(cls.root, "train", name), 4, rng)
        cls.data_dir = os.path.join(cls.tmp, "data")

    def _load(self, keep_aspect, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()):
            return pipeline.load_datasets(
                "class_folders", self.data_dir, manual_dir=self.root, batch_size=BATCH,
                crop_size=CROP, resize=RESIZE, keep_aspect=keep_aspect, mean="imagenet",
                seed=3, repeat_train=True, require_test=False, **kwargs)

    def test_copy_holds_the_stored_images_labels_and_ids(self):
        for keep_aspect in (False, True):
            builder = self._load(keep_aspect).builder
            store = random_access.open_store(builder, "train")
            stored = list(builder.as_dataset(
                "train", shuffle_files=False,
                read_config=pipeline.tfds.ReadConfig(add_tfds_id=True)).as_numpy_iterator())
            self.assertLen(store, len(stored))
            for i, example in enumerate(stored):
                self.assertAllEqual(store.image(i), example["image"])
                self.assertEqual(store.labels[i], example["label"])
                self.assertEqual(store.ids[i], example["tfds_id"])
            shapes = {e["image"].shape for e in stored}
            self.assertEqual(store.fixed_shape(),
                             shapes.pop() if len(shapes) == 1 else (None, None, 3))

    def test_started_at_k_is_the_tail_of_the_stream_from_zero(self):
        for keep_aspect, kwargs in ((False, {}), (True, {}),
                                    (True, {"examples_per_class": 3, "split_seed": 2})):
            data = self._load(keep_aspect, **kwargs)
            whole = batches(data.train, 8)
            for k in (2, 5):  # n = 12 or 9 examples, B = 4: inside and across epochs
                for (x, y), (ex, ey) in zip(batches(data.train_from(k), 8 - k), whole[k:]):
                    self.assertAllEqual(x, ex)
                    self.assertAllEqual(y, ey)

    def _first_batch_far(self, keep_aspect, reader):
        """``(positions augmented, mock of Store.<reader>)`` for the first batch at FAR."""
        data = self._load(keep_aspect)
        with augmented_positions() as seen, \
                mock.patch.object(random_access.Store, reader, autospec=True,
                                  side_effect=getattr(random_access.Store, reader)) as read:
            next(iter(data.train_from(FAR)))
        return seen, read

    def test_starting_far_reads_none_of_the_first_batches(self):
        seen, read = self._first_batch_far(True, "image")
        self.assertGreaterEqual(min(seen), FAR * BATCH)
        self.assertBetween(read.call_count, BATCH, 100 * BATCH)  # the prefetched ones only

    def test_square_store_reads_one_gather_per_batch_and_none_of_the_first(self):
        seen, read = self._first_batch_far(False, "images")
        self.assertGreaterEqual(min(seen), FAR * BATCH)
        self.assertBetween(read.call_count, 1, 100)  # the prefetched batches only
        for call in read.call_args_list:
            self.assertLen(call.args[1], BATCH)

    def test_square_store_stream_is_the_in_memory_stream(self):
        data = self._load(False)
        store = random_access.open_store(data.builder, "train")
        images = np.stack([store.image(i) for i in range(len(store))])
        from_store = random_access.stream_batches(store, BATCH, CROP, (0.0, 0.0, 0.0), 9,
                                                  start_batch=1)
        in_memory = data_lib.stateless_batches(images, store.labels, BATCH, 9, CROP, True,
                                               start_batch=1)
        for (x, y), (ex, ey) in zip(batches(from_store, 4), batches(in_memory, 4)):
            self.assertAllEqual(x, ex)
            self.assertAllEqual(y, ey)

    def test_one_pass_dataset_cannot_start_later(self):
        builder = self._load(False).builder
        with self.assertRaisesRegex(ValueError, "repeat=True"):
            pipeline.train_dataset(builder, "train", BATCH, CROP, (0.0, 0.0, 0.0),
                                   start_batch=2)


if __name__ == "__main__":
    tf.test.main()
