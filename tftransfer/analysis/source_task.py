"""Source-task accuracy with the source classifier put back (paper Table 5).

The fine-tuned backbone's features ``h(x)`` are scored by the *original* source head:
``logits = h(x) @ kernel + bias``. The drop is ``100 * (acc(pretrained) - acc(finetuned))``
percentage points on the same source validation data. Works with any pair of feature models
(e.g. ``feature_model(model, "avg_pool")`` of the pretrained and the fine-tuned network).
"""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.analysis._io import new_figure, save_figure, write_csv
from tftransfer.batching import labelled_batches


def feature_model(model, layer_name="avg_pool"):
    """The sub-network of ``model`` from its inputs to the output of ``layer_name``."""
    try:
        layer = model.get_layer(layer_name)
    except ValueError as err:
        raise ValueError(f"no layer {layer_name!r} in {model.name!r}; pass the name of the "
                         "penultimate (feature) layer.") from err
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, layer.output)


def head_weights(model_or_layer, layer_name=None):
    """``(kernel, bias)`` NumPy arrays of a Dense head: ``model.get_layer(layer_name)``, or
    the layer itself (e.g. ``TransferModel.source_head`` of :mod:`tftransfer.models.build`)."""
    layer = model_or_layer.get_layer(layer_name) if layer_name else model_or_layer
    if not isinstance(layer, keras.layers.Dense):
        raise ValueError(f"{layer.name!r} is a {type(layer).__name__}, not a Dense head.")
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.bias is not None else np.zeros(kernel.shape[1], kernel.dtype)
    return kernel, bias


def accuracy_with_head(features, kernel, bias, data, batch_size=128):
    """Top-1 accuracy of ``features(x) @ kernel + bias`` on labelled ``data``."""
    kernel = tf.constant(kernel)
    bias = tf.constant(bias, kernel.dtype)
    if kernel.shape.rank != 2 or bias.shape != (kernel.shape[1],):
        raise ValueError(f"head kernel must be [features, classes] and bias [classes]; got "
                         f"{kernel.shape} and {bias.shape}.")
    correct = total = 0
    for x, y in labelled_batches(data, batch_size):
        h = tf.cast(features(x, training=False), kernel.dtype)
        if h.shape[-1] != kernel.shape[0]:
            raise ValueError(f"features have width {h.shape[-1]} but the head expects "
                             f"{kernel.shape[0]}.")
        predicted = tf.argmax(tf.matmul(h, kernel) + bias, axis=-1, output_type=tf.int64)
        correct += int(tf.reduce_sum(tf.cast(predicted == tf.cast(tf.reshape(y, [-1]), tf.int64),
                                             tf.int64)))
        total += int(x.shape[0])
    if total == 0:
        raise ValueError("the data yielded no examples.")
    return correct / total


def source_accuracy_drop(pretrained_features, finetuned_features, kernel, bias, data,
                         batch_size=128):
    """``{"pretrained", "finetuned", "drop"}`` source accuracies (%) and their difference."""
    before = 100.0 * accuracy_with_head(pretrained_features, kernel, bias, data, batch_size)
    after = 100.0 * accuracy_with_head(finetuned_features, kernel, bias, data, batch_size)
    return {"pretrained": before, "finetuned": after, "drop": before - after}


def plot_drops(frame, png_path, csv_path=None):
    """Bar chart of the ``drop`` column per ``method`` row of ``frame`` (PNG, CSV)."""
    fig, ax = new_figure(max(4.0, 1.2 * len(frame)), 4.0)
    ax.bar(frame["method"], frame["drop"], color=[f"C{i}" for i in range(len(frame))])
    ax.set_ylabel("source accuracy drop (points)")
    ax.set_title("Source task with the source head put back")
    if csv_path:
        write_csv(frame, csv_path)
    return save_figure(fig, png_path)
