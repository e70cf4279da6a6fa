"""Converts PyTorch state dicts into Keras weights files, driven by the tables of layouts.py.

For every Keras layer with weights, the layout gives the PyTorch module name ``p``; the
layer type and variable name give the state-dict entry and the reshaping (:data:`WEIGHTS`):

    Conv2D kernel           p.weight  (out, in, kh, kw) -> (kh, kw, in, out)
    DepthwiseConv2D kernel  p.weight  (c * m, 1, kh, kw) -> (kh, kw, c, m)
    Dense kernel            p.weight  (out, in) -> (in, out)
    biases                  p.bias
    BatchNormalization      p.weight, p.bias, p.running_mean, p.running_var ->
                            gamma, beta, moving_mean, moving_variance

The conversion is strict: a Keras variable without its PyTorch entry, a shape mismatch or
an unused PyTorch entry (other than ``num_batches_tracked``) is an error listing them all.
The source classifier (``predictions``) is converted too, sized from the checkpoint. The
networks themselves and the file-level conversion of a named architecture are in
:mod:`tftransfer.models.pretrained` (models build on weights, never the reverse).
"""
from typing import TYPE_CHECKING, Dict, Mapping

import numpy as np

from tftransfer.weights import layouts

if TYPE_CHECKING:  # annotations only: the weights package does not need Keras to import
    import keras


def _conv_kernel(w, shape):
    return np.transpose(w, (2, 3, 1, 0))


def _depthwise_kernel(w, shape):
    # Output channel i * m + j of a grouped convolution is multiplier j of input channel i.
    kh, kw, channels, multiplier = shape
    if w.shape != (channels * multiplier, 1, kh, kw):
        return w  # reported as a shape mismatch by the caller
    return np.transpose(w, (2, 3, 0, 1)).reshape(shape)


def _dense_kernel(w, shape):
    return np.transpose(w)


def _same(w, shape):
    return w


# (Keras layer class, Keras variable name) -> (PyTorch parameter name,
# reshaping(array, Keras shape)).
WEIGHTS = {
    ("Conv2D", "kernel"): ("weight", _conv_kernel),
    ("Conv2D", "bias"): ("bias", _same),
    ("DepthwiseConv2D", "kernel"): ("weight", _depthwise_kernel),
    ("DepthwiseConv2D", "bias"): ("bias", _same),
    ("Dense", "kernel"): ("weight", _dense_kernel),
    ("Dense", "bias"): ("bias", _same),
    ("BatchNormalization", "gamma"): ("weight", _same),
    ("BatchNormalization", "beta"): ("bias", _same),
    ("BatchNormalization", "moving_mean"): ("running_mean", _same),
    ("BatchNormalization", "moving_variance"): ("running_var", _same),
}
IGNORED_SUFFIXES = (".num_batches_tracked",)

def torch_weights_for(model: "keras.Model", state_dict: Mapping[str, np.ndarray],
                      layout: Mapping) -> Dict[str, np.ndarray]:
    """Returns ``{variable.path: array}`` for every variable of ``model`` from ``state_dict``.

    Raises:
      ValueError: listing unmapped layers, missing PyTorch entries, shape mismatches and
        unused PyTorch entries.
    """
    values, problems, used = {}, [], set()
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = layouts.torch_prefix(layout, layer.name)
        if prefix is None:
            problems.append(f"Keras layer {layer.name!r} has weights but no layout entry")
            continue
        for variable in layer.weights:
            suffix, reshape = WEIGHTS[(type(layer).__name__, variable.name)]
            key = f"{prefix}.{suffix}"
            if key not in state_dict:
                problems.append(f"{key} (for {variable.path}) is missing from the checkpoint")
                continue
            used.add(key)
            value = reshape(state_dict[key], tuple(variable.shape))
            if value.shape != tuple(variable.shape):
                problems.append(f"{key} has shape {state_dict[key].shape}, giving "
                                f"{value.shape} where {variable.path} needs "
                                f"{tuple(variable.shape)}")
                continue
            values[variable.path] = value
    problems += [f"{key} of the checkpoint is not used" for key in state_dict
                 if key not in used and not key.endswith(IGNORED_SUFFIXES)]
    if problems:
        raise ValueError(f"The checkpoint does not fit the Keras model {model.name!r}:\n  "
                         + "\n  ".join(problems))
    return values


def load_torch_weights(model: "keras.Model", state_dict: Mapping[str, np.ndarray],
                       layout: Mapping) -> None:
    """Assigns ``state_dict`` (PyTorch names -> arrays) to ``model``; all or nothing."""
    values = torch_weights_for(model, state_dict, layout)
    for variable in model.weights:
        variable.assign(values[variable.path].astype(variable.dtype))
