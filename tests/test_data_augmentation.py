"""augment_batches' options: defaults bitwise as before, mirror off, zero padding."""
import numpy as np
import tensorflow as tf

from tftransfer.data import preprocessing

CROP = 6


def former_random_crop_mirror(image, seed, crop):
    """``random_crop_mirror`` before ``mirror`` / ``pad`` existed, verbatim."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    shape = tf.shape(image)
    top, left = preprocessing.random_crop_offsets(seeds[0], shape[0], shape[1], crop)
    image = image[top:top + crop, left:left + crop]
    mirror = tf.random.stateless_uniform([], seeds[1]) < 0.5
    image = tf.cond(mirror, lambda: tf.reverse(image, axis=[1]), lambda: image)
    return tf.ensure_shape(image, [crop, crop, image.shape[-1]])


def former_augment_batches(dataset, batch_size, crop, mean, seed=None,
                           ranges=preprocessing.JitterRanges(), jitter=True):
    """``augment_batches`` before ``mirror`` / ``pad`` existed, verbatim."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def per_example(example, example_seed):
        image, label = example
        split = tf.random.experimental.stateless_split(example_seed, 2)
        return (former_random_crop_mirror(image, split[0], crop),
                preprocessing.sample_jitter(split[1], ranges), label)

    def per_batch(images, params, labels):
        return preprocessing.finish_batch(images, params, mean, jitter), labels

    ds = tf.data.Dataset.zip((dataset, seeds)).map(per_example)
    return ds.batch(batch_size, drop_remainder=True).map(per_batch)


def images_dataset(count=12, size=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(1, 256, (count, size, size, 3)).astype(np.uint8)  # No zero pixel.
    return images, tf.data.Dataset.from_tensor_slices((images, np.arange(count)))


def windows(image, crop):
    """Every ``crop x crop`` window of ``image`` (unmirrored)."""
    h, w = image.shape[:2]
    return [image[t:t + crop, l:l + crop] for t in range(h - crop + 1)
            for l in range(w - crop + 1)]


def is_window(crop_image, image):
    return any(np.array_equal(crop_image, w) for w in windows(image, crop_image.shape[0]))


class AugmentOptionsTest(tf.test.TestCase):

    def _outputs(self, ds, **kwargs):
        out = preprocessing.augment_batches(ds, 4, CROP, (0.0, 0.0, 0.0), seed=11, **kwargs)
        return [(x.numpy(), y.numpy()) for x, y in out]

    def test_defaults_are_bitwise_the_former_function(self):
        _, ds = images_dataset()
        cases = [({"jitter": True}, True), ({"jitter": False}, False),
                 ({"mirror": True, "pad": 0}, True)]  # The last: the defaults spelled out.
        for options, jitter in cases:
            got = self._outputs(ds, **options)
            expected = [(x.numpy(), y.numpy()) for x, y in former_augment_batches(
                ds, 4, CROP, (0.0, 0.0, 0.0), seed=11, jitter=jitter)]
            self.assertLen(got, 3)
            for (gx, gy), (ex, ey) in zip(got, expected):
                self.assertAllEqual(gx, ex)
                self.assertAllEqual(gy, ey)

    def test_mirror_off_gives_only_unmirrored_windows(self):
        images, ds = images_dataset()
        mirrored = 0
        for mirror in (False, True):
            for x, y in self._outputs(ds, jitter=False, mirror=mirror):
                for crop_image, label in zip(x, y):
                    plain = is_window(crop_image, images[label])
                    if not mirror:
                        self.assertTrue(plain)
                    elif not plain:
                        self.assertTrue(is_window(crop_image[:, ::-1], images[label]))
                        mirrored += 1
        self.assertGreater(mirrored, 0)  # Mirroring on does mirror some crops.

    def test_mirror_off_keeps_the_crops_of_mirror_on(self):
        _, ds = images_dataset()
        on = self._outputs(ds, jitter=False)
        off = self._outputs(ds, jitter=False, mirror=False)
        for (a, _), (b, _) in zip(on, off):
            for x, z in zip(a, b):
                self.assertTrue(np.array_equal(x, z) or np.array_equal(x[:, ::-1], z))

    def test_pad_crops_windows_of_the_zero_padded_image(self):
        images, ds = images_dataset(size=CROP)  # Without padding the crop is the image.
        pad, with_border = 3, 0
        for x, y in self._outputs(ds, jitter=False, mirror=False, pad=pad):
            for crop_image, label in zip(x, y):
                padded = np.pad(images[label], ((pad, pad), (pad, pad), (0, 0)))
                self.assertTrue(is_window(crop_image, padded))
                with_border += int((crop_image == 0).any())
        self.assertGreater(with_border, 0)
        with self.assertRaisesRegex(ValueError, "pad=-1 is negative"):
            self._outputs(ds, pad=-1)

    def test_train_transform_takes_the_same_options(self):
        image = images_dataset(1, 8)[0][0]
        seed = tf.constant([3, 4], tf.int64)
        out = preprocessing.train_transform(image, seed, (0.0, 0.0, 0.0), CROP, jitter=False,
                                            mirror=False, pad=2).numpy()
        self.assertTrue(is_window(out, np.pad(image, ((2, 2), (2, 2), (0, 0)))))


if __name__ == "__main__":
    tf.test.main()
