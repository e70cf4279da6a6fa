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
The source classifier (``predictions``) is converted too, sized from the checkpoint.
"""
import functools
import logging

import numpy as np

from tftransfer.io_utils import atomic_path
from tftransfer.models.efficientnet_lite import efficientnet_lite0
from tftransfer.models.resnet_torch import DEPTHS, resnet_torch
from tftransfer.weights import layouts
from tftransfer.weights.torch_checkpoint import read_state_dict

logger = logging.getLogger(__name__)


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

# Architecture name -> (builder taking ``classes``, layout table).
ARCHITECTURES = {"efficientnet_lite0": (efficientnet_lite0, layouts.EFFICIENTNET_LITE)}
ARCHITECTURES.update({f"resnet{d}_torch": (functools.partial(resnet_torch, d),
                                           layouts.RESNET_TORCHVISION) for d in DEPTHS})


def torch_weights_for(model, state_dict, layout):
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


def load_torch_weights(model, state_dict, layout):
    """Assigns ``state_dict`` (PyTorch names -> arrays) to ``model``; all or nothing."""
    values = torch_weights_for(model, state_dict, layout)
    for variable in model.weights:
        variable.assign(values[variable.path].astype(variable.dtype))


def _check_arch(arch):
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of "
                         f"{sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[arch]


def head_classes(arch, state_dict):
    """Number of classes of the checkpoint's classifier (rows of its weight matrix)."""
    _, layout = _check_arch(arch)
    key = layouts.torch_prefix(layout, "predictions") + ".weight"
    if key not in state_dict:
        raise ValueError(f"The checkpoint has no classifier {key!r}; is it a {arch} model?")
    return state_dict[key].shape[0]


def convert_checkpoint(arch, checkpoint_path, output_path, classes=None):
    """Converts a PyTorch checkpoint of ``arch`` into a Keras ``.weights.h5`` file.

    Args:
      arch: a key of :data:`ARCHITECTURES` (``efficientnet_lite0``, ``resnet50_torch``...).
      checkpoint_path: the ``.pth`` / ``.pth.tar`` file (zip or legacy format).
      output_path: where to write the weights; must end with ``.weights.h5``. Written
        atomically: nothing is left there if the conversion fails.
      classes: expected width of the source classifier; by default the checkpoint's.

    Returns:
      ``output_path``; load it with ``model.load_weights`` into the model the builder of
      ``arch`` makes with ``include_top=True, classes=<the checkpoint's classes>``.
    """
    builder, layout = _check_arch(arch)
    if not str(output_path).endswith(".weights.h5"):
        raise ValueError(f"Output path {output_path!r} must end with '.weights.h5' "
                         "(the Keras weights-file suffix).")
    logger.info("Reading %s", checkpoint_path)
    state_dict = read_state_dict(checkpoint_path)
    found = head_classes(arch, state_dict)
    if classes is not None and classes != found:
        raise ValueError(f"The checkpoint's classifier has {found} classes, not {classes}; "
                         "pass classes=None to keep the checkpoint's.")
    logger.info("Converting %d tensors into %s (%d classes)", len(state_dict), arch, found)
    model = builder(classes=found)
    load_torch_weights(model, state_dict, layout)
    with atomic_path(output_path) as tmp:
        model.save_weights(tmp)
    logger.info("Wrote %s", output_path)
    return output_path
