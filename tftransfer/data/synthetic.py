"""Writes synthetic image files (for tests and the input benchmark).

Images are smooth random colour gradients plus noise, so that JPEG sizes and decode
costs resemble photographs more than pure noise would.
"""
import os

import numpy as np
from PIL import Image


def random_image(height, width, rng):
    """An HxWx3 uint8 array: random linear colour gradient plus uniform noise (+-16)."""
    y = np.arange(height, dtype=np.float32)[:, None, None] / height
    x = np.arange(width, dtype=np.float32)[None, :, None] / width
    start, dy, dx = (rng.uniform(lo, hi, 3).astype(np.float32)
                     for lo, hi in ((0, 255), (-255, 255), (-255, 255)))
    noise = rng.integers(0, 33, (height, width, 3), dtype=np.uint8).astype(np.float32) - 16
    image = start + y * dy + x * dx + noise
    return np.clip(image, 0, 255).astype(np.uint8)


def write_image(path, height, width, rng, mode="RGB", fmt="JPEG"):
    """Writes a random image as ``mode`` (RGB, L, CMYK) in ``fmt``; returns the RGB array."""
    rgb = random_image(height, width, rng)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rgb).convert(mode).save(path, format=fmt, quality=90)
    return rgb


def write_corrupt(path):
    """Writes bytes that start like a JPEG but cannot be decoded."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not really a JPEG")


def write_odd_images(directory, count, rng, min_side=9, max_side=40):
    """``count`` RGB JPEGs of random odd sizes named 0000.jpg...; returns their names."""
    names = []
    for i in range(count):
        h, w = (2 * rng.integers(min_side // 2, max_side // 2) + 1 for _ in range(2))
        names.append(f"{i:04d}.jpg")
        write_image(os.path.join(directory, names[-1]), h, w, rng)
    return names
