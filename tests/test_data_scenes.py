"""Fashion-MNIST segmentation scenes: reproducible from the seed, masks that follow the
foreground and the kept classes of the recorded items, the last-drawn item on top."""
import numpy as np
import tensorflow as tf

from tftransfer.data import scenes


def tiny_items(n=12, seed=0):
    """Grey 8x8 'items': a bright square of random size on black, labels 0..2."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 8, 8), np.uint8)
    for k in range(n):
        a, b = rng.integers(0, 3), rng.integers(5, 8)
        images[k, a:b, a:b] = rng.integers(100, 255)
    return images, np.arange(n) % 3


class ScenesTest(tf.test.TestCase):

    def test_same_seed_same_scenes_other_seed_other_scenes(self):
        images, labels = tiny_items()
        a = scenes.make_scenes(images, labels, 5, size=24, seed=3)
        b = scenes.make_scenes(images, labels, 5, size=24, seed=3)
        c = scenes.make_scenes(images, labels, 5, size=24, seed=4)
        for x, y in zip(a, b):
            self.assertAllEqual(x, y)
        self.assertNotAllEqual(a[1], c[1])

    def test_masks_follow_the_foreground_and_the_classes(self):
        images, labels = tiny_items()
        kept = [2, 0]  # relabelled 1 and 2, in this order
        pixels, masks, order = scenes.make_scenes(images, labels, 20, size=24, classes=kept,
                                                  items=(1, 3), seed=1)
        self.assertAllEqual(pixels > 32, masks > 0)  # background is black and label 0
        self.assertContainsSubset(set(np.unique(masks)), {0, 1, 2})
        counts = (order >= 0).sum(axis=1)
        self.assertTrue(np.all((counts >= 1) & (counts <= 3)))
        drawn = order[order >= 0]
        self.assertContainsSubset(set(labels[drawn]), set(kept))
        # A scene's labels are those of its drawn items (occluded ones may vanish).
        for mask, items in zip(masks, order):
            present = {kept.index(labels[s]) + 1 for s in items if s >= 0}
            self.assertContainsSubset(set(np.unique(mask)) - {0}, present)

    def test_the_last_item_is_on_top(self):
        images, labels = tiny_items()
        pixels, masks, order = scenes.make_scenes(images, labels, 1, size=8, items=(2, 2),
                                                  scale=(1.0, 1.0), seed=0)
        last = order[0, 1]  # at scale 1 in an 8-px scene every item covers the canvas
        foreground = images[last] > 32
        self.assertAllEqual(pixels[0][foreground], images[last][foreground])
        self.assertAllEqual(masks[0][foreground], np.full(foreground.sum(), labels[last] + 1))

    def test_items_too_large_are_refused(self):
        images, labels = tiny_items()
        with self.assertRaisesRegex(ValueError, "does not fit in a 10-px scene"):
            scenes.make_scenes(images, labels, 1, size=10, scale=(1.0, 1.5))
