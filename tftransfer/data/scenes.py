"""Segmentation scenes composed of Fashion-MNIST items: the CPU-scale segmentation target
(the analog of Li et al. 2018, Section 4.2 on real offline images).

Each scene is a black ``size x size`` grey canvas on which ``k`` items (``k`` uniform in
``items``) are drawn in turn. Item ``j``: a random image of the kept classes, resized by a
factor uniform in ``scale`` (nearest neighbour), placed at a uniform position entirely
inside the canvas. Its foreground pixels (value > ``threshold``) overwrite the canvas, so a
later item occludes the earlier ones; the mask gets ``1 + c`` there, ``c`` the item's class
relabelled in the order of ``classes``; 0 is the background. ``order[i]`` lists the drawn
source indices in drawing order (-1 after the last). Every draw comes from
``numpy.random.default_rng(seed)``: the same arguments give the same scenes everywhere.
"""
import numpy as np


def _resize_nearest(image, factor):
    h, w = image.shape
    out_h, out_w = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
    rows = np.minimum((np.arange(out_h) + 0.5) * h / out_h, h - 1).astype(int)
    cols = np.minimum((np.arange(out_w) + 0.5) * w / out_w, w - 1).astype(int)
    return image[rows][:, cols]


def make_scenes(images, labels, num_scenes, size=64, items=(2, 4), scale=(0.75, 1.5),
                threshold=32, classes=None, seed=0):
    """``(scenes uint8 [n, size, size], masks uint8 [n, size, size], order int64 [n, max k])``
    (module docstring) from grey ``images [N, h, w]`` and their ``labels``."""
    images, labels = np.asarray(images), np.asarray(labels)
    classes = list(np.unique(labels) if classes is None else classes)
    pool = np.flatnonzero(np.isin(labels, classes))
    if not pool.size:
        raise ValueError(f"no image of classes {classes}.")
    low, high = items
    if not 1 <= low <= high:
        raise ValueError(f"items must be (min, max) with 1 <= min <= max, got {items}.")
    largest = int(round(max(images.shape[1:]) * scale[1]))
    if largest > size:
        raise ValueError(f"an item scaled by {scale[1]} ({largest} px) does not fit in a "
                         f"{size}-px scene; raise size or lower the scale.")
    relabel = {c: i + 1 for i, c in enumerate(classes)}
    rng = np.random.default_rng(seed)
    scenes = np.zeros((num_scenes, size, size), np.uint8)
    masks = np.zeros((num_scenes, size, size), np.uint8)
    order = np.full((num_scenes, high), -1, np.int64)
    for i in range(num_scenes):
        for j in range(rng.integers(low, high + 1)):
            source = rng.choice(pool)
            item = _resize_nearest(images[source], rng.uniform(*scale))
            top = rng.integers(0, size - item.shape[0] + 1)
            left = rng.integers(0, size - item.shape[1] + 1)
            window = (slice(top, top + item.shape[0]), slice(left, left + item.shape[1]))
            foreground = item > threshold
            scenes[i][window][foreground] = item[foreground]
            masks[i][window][foreground] = relabel[labels[source]]
            order[i, j] = source
    return scenes, masks, order
