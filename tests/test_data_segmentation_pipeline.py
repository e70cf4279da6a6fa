"""``train_batches`` / ``eval_batches`` of tftransfer.data.segmentation_pipeline on tiny
in-memory examples: shapes and dtypes; the stream is the documented pure function of the
seed (example at position ``p`` transformed with ``[seed, p]``, each epoch a permutation
of the examples, epochs in different orders, the same batches on a second pass or after
skipping); whole images in order for evaluation; clear refusals."""
import numpy as np
import tensorflow as tf

from tftransfer.data import segmentation_pipeline as seg_data
from tftransfer.data import segmentation_transforms as T

N, H, W = 6, 8, 10


def examples(n=N):
    """Example ``i`` is a random image whose mask is the constant ``i`` (its identity)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, H, W, 3)).astype(np.uint8)
    masks = np.repeat(np.arange(n, dtype=np.uint8), H * W).reshape(n, H, W)
    return images, masks, tf.data.Dataset.from_tensor_slices({"image": images, "mask": masks})


def take(ds, count):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]


class TrainBatchesTest(tf.test.TestCase):

    def test_shapes_dtypes_and_same_stream_for_same_seed(self):
        _, _, ds = examples()
        first = seg_data.train_batches(ds, 4, (5, 7), scale=(0.5, 2.0), color_jitter=True,
                                       seed=3)
        spec = first.element_spec
        self.assertEqual(spec[0].shape.as_list(), [4, 5, 7, 3])
        self.assertEqual(spec[0].dtype, tf.float32)
        self.assertEqual(spec[1].shape.as_list(), [4, 5, 7])
        self.assertEqual(spec[1].dtype, tf.int32)
        batches = take(first, 4)
        again = take(seg_data.train_batches(ds, 4, (5, 7), scale=(0.5, 2.0),
                                            color_jitter=True, seed=3), 4)
        other = take(seg_data.train_batches(ds, 4, (5, 7), scale=(0.5, 2.0),
                                            color_jitter=True, seed=4), 4)
        for (x, y), (x2, y2) in zip(batches, again):
            self.assertAllEqual(x, x2)
            self.assertAllEqual(y, y2)
        self.assertNotAllClose(batches[0][0], other[0][0])
        for x, _ in batches:
            self.assertAllInRange(x, 0.0, 255.0)
        # A restart that skips the consumed batches sees the rest of the same stream.
        resumed = take(seg_data.train_batches(ds, 4, (5, 7), scale=(0.5, 2.0),
                                              color_jitter=True, seed=3).skip(2), 2)
        self.assertAllEqual(resumed[0][0], batches[2][0])
        self.assertAllEqual(resumed[1][1], batches[3][1])

    def test_position_p_is_transformed_with_seed_p(self):
        images, masks, ds = examples()
        # shuffle_buffer=1: each epoch reads the stored order, so position p is example p % N.
        batches = take(seg_data.train_batches(ds, 4, (6, 6), scale=(0.7, 1.5), seed=9,
                                              shuffle_buffer=1), 3)
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        for p in range(12):
            want = T.train_transform(images[p % N], masks[p % N], [9, p], (6, 6), (0.7, 1.5))
            self.assertAllClose(x[p], want[0])
            self.assertAllEqual(y[p], want[1])

    def test_each_epoch_is_a_permutation_in_its_own_order(self):
        _, _, ds = examples()
        batches = take(seg_data.train_batches(ds, 3, (H, W), mirror=False, seed=1,
                                               shuffle_buffer=N), 4 * N // 3)
        identity = np.concatenate([y[:, 0, 0] for _, y in batches])  # mask = example index
        epochs = identity.reshape(4, N)
        for order in epochs:
            self.assertCountEqual(order.tolist(), range(N))
        self.assertGreater(len({tuple(order) for order in epochs}), 1)

    def test_refusals(self):
        _, _, ds = examples()
        with self.assertRaisesRegex(ValueError, "empty"):
            seg_data.train_batches(ds.take(0), 2, 4)
        with self.assertRaisesRegex(ValueError, "'image'.*'mask'"):
            seg_data.train_batches(ds.map(lambda e: e["image"]), 2, 4)
        with self.assertRaisesRegex(ValueError, "batch_size must be positive"):
            seg_data.train_batches(ds, 0, 4)
        with self.assertRaisesRegex(ValueError, "crop_size"):
            seg_data.train_batches(ds, 2, (4, -1))
        with self.assertRaisesRegex(ValueError, "Unknown segmentation dataset 'voc'"):
            seg_data.load_examples("voc", "train", self.get_temp_dir())


class EvalBatchesTest(tf.test.TestCase):

    def test_whole_images_in_order(self):
        images, masks, ds = examples()
        batches = list(seg_data.eval_batches(ds, batch_size=4).as_numpy_iterator())
        self.assertEqual([len(b[0]) for b in batches], [4, 2])
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        self.assertEqual(x.dtype, np.float32)
        self.assertEqual(y.dtype, np.int32)
        self.assertAllEqual(x, images.astype(np.float32))
        self.assertAllEqual(y, masks.astype(np.int32))

    def test_mixed_sizes_one_at_a_time(self):
        small = tf.data.Dataset.from_tensors({"image": tf.zeros([3, 4, 3], tf.uint8),
                                              "mask": tf.ones([3, 4], tf.uint8)})
        big = tf.data.Dataset.from_tensors({"image": tf.zeros([5, 2, 3], tf.uint8),
                                            "mask": tf.ones([5, 2], tf.uint8)})
        shapes = [x.shape for x, _ in seg_data.eval_batches(small.concatenate(big))]
        self.assertEqual(shapes, [(1, 3, 4, 3), (1, 5, 2, 3)])


if __name__ == "__main__":
    tf.test.main()
