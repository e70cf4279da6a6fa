"""Datasets: the paper's targets and sources as tf.data pipelines, and Fashion-MNIST.

``from tftransfer.data import load_datasets`` (and the other names below) imports the
tensorflow-datasets machinery on first use only, so the Fashion-MNIST loader
(:mod:`tftransfer.data.fashion_mnist`) stays light.
"""
import importlib

_LAZY = {
    "DATASET_NAMES": "pipeline", "Datasets": "pipeline", "get_builder": "pipeline",
    "load_datasets": "pipeline", "prepare": "pipeline",
    "IMAGENET_MEAN": "preprocessing", "JitterRanges": "preprocessing",
    "average_crops": "evaluation", "crop_accuracy": "evaluation", "predict_crops": "evaluation",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tftransfer.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tftransfer.data.{_LAZY[name]}"), name)
