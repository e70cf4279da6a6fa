"""Source-task accuracy with the source classifier put back (Li et al. 2018, Table 5).

The fine-tuned backbone's features ``h(x)`` are scored by the *original* source head,
``logits = h(x) @ kernel + bias``: the head is attached to the feature model as one
``keras.Model`` and scored by :func:`tftransfer.data.evaluation.crop_accuracy`, the path the
training driver takes with ``TransferModel.source_model()`` (1 or 10 crops). The drop is
``100 * (acc(pretrained) - acc(finetuned))`` percentage points on the same source data.
"""
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tftransfer.batching import labelled_batches
from tftransfer.data.evaluation import crop_accuracy


def feature_model(model: keras.Model, layer_name: str = "avg_pool") -> keras.Model:
    """The sub-network of ``model`` from its inputs to the output of ``layer_name``."""
    try:
        layer = model.get_layer(layer_name)
    except ValueError as err:
        raise ValueError(f"no layer {layer_name!r} in {model.name!r}; pass the name of the "
                         "penultimate (feature) layer.") from err
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, layer.output)


def source_head(model: keras.Model, layer_name: str = "predictions") -> keras.layers.Dense:
    """The Dense source classifier ``model.get_layer(layer_name)``."""
    layer = model.get_layer(layer_name)
    if not isinstance(layer, keras.layers.Dense):
        raise ValueError(f"{layer.name!r} is a {type(layer).__name__}, not a Dense head.")
    return layer


def dense_head(kernel: np.ndarray, bias: np.ndarray) -> keras.layers.Dense:
    """A Dense layer holding given ``kernel [features, classes]`` and ``bias [classes]``."""
    kernel, bias = np.asarray(kernel), np.asarray(bias, np.asarray(kernel).dtype)
    if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
        raise ValueError(f"head kernel must be [features, classes] and bias [classes]; got "
                         f"{kernel.shape} and {bias.shape}.")
    head = keras.layers.Dense(kernel.shape[1], name="source_head", dtype=kernel.dtype.name)
    head.build((None, kernel.shape[0]))
    head.set_weights([kernel, bias])
    return head


def with_head(features: keras.Model, head: keras.layers.Dense) -> keras.Model:
    """``keras.Model``: ``features``' inputs -> ``head(features(x))`` (source logits)."""
    width = features.output.shape[-1]
    if head.built and head.kernel.shape[0] != width:
        raise ValueError(f"features have width {width} but the head expects "
                         f"{head.kernel.shape[0]}.")
    return keras.Model(features.inputs, head(features.output))


def source_accuracy(features: keras.Model, head: keras.layers.Dense, data: Any,
                    batch_size: int = 128) -> float:
    """Top-1 accuracy of ``head(features(x))`` on labelled ``data`` (see
    :func:`tftransfer.batching.batches`), computed by ``crop_accuracy``."""
    model = with_head(features, head)
    seen = []

    def flat_labels():
        for x, y in labelled_batches(data, batch_size):
            seen.append(int(x.shape[0]))
            yield x, tf.reshape(y, [-1])

    accuracy = crop_accuracy(model, flat_labels())
    if not sum(seen):
        raise ValueError("the data yielded no examples.")
    return accuracy


def source_accuracy_drop(pretrained_features: keras.Model, finetuned_features: keras.Model,
                         head: keras.layers.Dense, data: Any,
                         batch_size: int = 128) -> dict[str, float]:
    """``{"pretrained", "finetuned", "drop"}`` source accuracies (%) and their difference."""
    before = 100.0 * source_accuracy(pretrained_features, head, data, batch_size)
    after = 100.0 * source_accuracy(finetuned_features, head, data, batch_size)
    return {"pretrained": before, "finetuned": after, "drop": before - after}
