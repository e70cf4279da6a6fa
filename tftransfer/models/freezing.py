"""Freezing: the first k units (paper, Figure 3), batch-norm statistics, linear probes.

Call these **before** ``model.compile``: Keras collects the trainable variables when it
builds the train step.

Batch norm in a frozen unit: its gamma and beta stop training. By default its moving mean
and variance keep updating from the target batches and it normalises with batch statistics
during training (Li et al. 2018, Section 4.1: moving averages are updated during fine-tuning).
With ``freeze_bn_stats=True`` the layer is set non-trainable, which in Keras 3 also makes
it run in inference mode: it normalises with the frozen moving statistics and never
updates them.
"""
from typing import Sequence

import keras

from tftransfer.models.units import units


def _freeze_layer(layer, freeze_bn_stats):
    if isinstance(layer, keras.layers.BatchNormalization) and not freeze_bn_stats:
        for variable in layer.trainable_weights:  # gamma and beta; statistics keep moving
            variable.trainable = False
    else:
        layer.trainable = False


def freeze_units(model: keras.Model, k: int, freeze_bn_stats: bool = False) -> list[str]:
    """Freezes the layers of the first ``k`` units of ``model`` (0 <= k <= number of units).

    Returns the names of the frozen units. Layers outside every unit (the head) and later
    units are untouched.
    """
    table = units(model)
    if not isinstance(k, int) or not 0 <= k <= len(table):
        raise ValueError(f"k must be an integer in [0, {len(table)}] (the units of "
                         f"{model.name!r}: {list(table)}), got {k!r}.")
    frozen = list(table)[:k]
    for name in frozen:
        for layer in table[name]:
            _freeze_layer(layer, freeze_bn_stats)
    return frozen


def freeze_batch_norm(model: keras.Model) -> list[str]:
    """Puts every batch-norm layer of ``model`` in inference mode (statistics and affine
    parameters frozen); returns their names. Useful with small batches."""
    names = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            names.append(layer.name)
    return names


def linear_probe(model: keras.Model,
                 head_layers: Sequence[str | keras.layers.Layer]) -> list[str]:
    """Freezes everything except ``head_layers`` (layers or names): a linear classifier on
    frozen features. Every frozen batch-norm layer runs in inference mode. Returns the
    names of the layers left trainable."""
    if isinstance(head_layers, (str, keras.layers.Layer)):
        head_layers = [head_layers]
    by_name = {layer.name: layer for layer in model.layers}
    keep = []
    for entry in head_layers:
        name = entry if isinstance(entry, str) else entry.name
        if name not in by_name or (not isinstance(entry, str) and by_name[name] is not entry):
            raise ValueError(f"linear_probe: {name!r} is not a layer of model {model.name!r}; "
                             "pass the new head's layers or their names (TransferModel."
                             "new_layers).")
        keep.append(by_name[name])
    keep_ids = {id(layer) for layer in keep}
    for layer in model.layers:
        if id(layer) not in keep_ids:
            layer.trainable = False
    for layer in keep:
        layer.trainable = True
    return [layer.name for layer in keep]

