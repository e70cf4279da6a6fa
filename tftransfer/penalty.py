"""Attach a penalty scheme of the paper to a Keras model: :func:`penalize`.

After ``penalize(model, scheme, alpha, beta, new_layers)``, ``model.losses`` holds

    Omega(w) = Omega_scheme(w_S; w_S0, alpha) + beta/2 * ||w_new||^2

where ``w_S`` are the inherited kernels (every convolution, depthwise and dense kernel of
the layers not in ``new_layers``), ``w_S0`` their values at the time of the call (frozen
copies, the starting point) and ``w_new`` the kernels of ``new_layers``. ``model.fit`` then
minimises the data loss plus ``sum(model.losses)``. Biases and batch-norm parameters are not
penalised (the authors' rule), unless ``penalize_all_trainable=True`` (TLlib's rule), which
applies the scheme to every variable of the inherited layers and L2(beta) to every variable
of the new layers. Keras counts regularizers of trainable variables only: a frozen layer
adds nothing.
"""
import dataclasses
from typing import Dict, List, Optional

import keras
import numpy as np

from tftransfer import regularizers
from tftransfer.variables import StartingPoint

SCHEMES = ("none", "l2", "l2_sp", "l2_sp_fisher", "l1_sp", "group_lasso_sp",
           "group_lasso_sp_fisher")
FISHER_SCHEMES = ("l2_sp_fisher", "group_lasso_sp_fisher")
ANCHOR_ATTRIBUTE = "tftransfer_starting_point"

_CONV_TRANSPOSE = tuple(getattr(keras.layers, n) for n in
                        ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"))
_DEPTHWISE = tuple(getattr(keras.layers, n) for n in ("DepthwiseConv1D", "DepthwiseConv2D"))
_SEPARABLE = tuple(getattr(keras.layers, n) for n in ("SeparableConv1D", "SeparableConv2D"))
_KERNEL_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D,
                  keras.layers.Conv2D, keras.layers.Conv3D) + _CONV_TRANSPOSE + _DEPTHWISE


@dataclasses.dataclass
class PenaltyPlan:
    """What :func:`penalize` attached: variable paths per part, and the starting point."""

    scheme: str
    alpha: float
    beta: float
    inherited: List[str]
    new: List[str]
    starting_point: Optional[StartingPoint]


def all_layers(model):
    """Every layer nested in ``model`` (depth first), the model itself excluded."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def kernel_variables(layer):
    """``[(variable, group_axes)]`` for the kernels of ``layer`` (conv, depthwise, dense).

    ``group_axes`` are the axes summed inside one group of Group-Lasso-SP, so that a group is
    the fan-in of one output channel: all axes but the last for HWIO convolution and dense
    kernels, the spatial axes for depthwise kernels (kh, kw, c_in, multiplier) and all
    axes but the second-to-last for transposed convolutions (kh, kw, c_out, c_in).
    """
    if isinstance(layer, _SEPARABLE):
        depthwise, pointwise = layer.depthwise_kernel, layer.pointwise_kernel
        return [(depthwise, tuple(range(len(depthwise.shape) - 2))),
                (pointwise, regularizers.default_group_axes(len(pointwise.shape)))]
    if not isinstance(layer, _KERNEL_LAYERS) or getattr(layer, "kernel", None) is None:
        return []
    kernel = layer.kernel
    rank = len(kernel.shape)
    if isinstance(layer, _DEPTHWISE):
        return [(kernel, tuple(range(rank - 2)))]
    if isinstance(layer, _CONV_TRANSPOSE):
        return [(kernel, tuple(a for a in range(rank) if a != rank - 2))]
    return [(kernel, regularizers.default_group_axes(rank))]


def _penalised_variables(layer, all_trainable):
    """``[(variable, group_axes)]`` this layer contributes to the penalty."""
    kernels = kernel_variables(layer)
    if not all_trainable:
        return kernels
    axes = {id(v): a for v, a in kernels}
    own = [v for v in layer.trainable_weights
           if not any(v is w for sub in all_layers(layer) for w in sub.weights)]
    return [(v, axes.get(id(v), regularizers.default_group_axes(len(v.shape)))) for v in own]


def _resolve_new_layers(model, new_layers, layers):
    by_name = {layer.name: layer for layer in layers}
    resolved = []
    for entry in new_layers:
        if isinstance(entry, str):
            if entry not in by_name:
                raise ValueError(
                    f"new_layers: no layer named {entry!r} in model {model.name!r}. Layers "
                    f"with weights: {sorted(n for n, l in by_name.items() if l.weights)}.")
            resolved.append(by_name[entry])
        elif any(entry is layer for layer in layers):
            resolved.append(entry)
        else:
            raise ValueError(f"new_layers: layer {getattr(entry, 'name', entry)!r} is not part "
                             f"of model {model.name!r}. Pass layers of the model or their names.")
    # A new layer's sublayers are new too.
    for layer in list(resolved):
        resolved.extend(all_layers(layer))
    return resolved


def _scheme_regularizer(scheme, alpha, group_axes, epsilon):
    """The unbound regularizer of ``scheme`` for one inherited variable."""
    if scheme == "l2":
        return regularizers.L2(alpha)
    if scheme == "l2_sp":
        return regularizers.L2SP(alpha)
    if scheme == "l2_sp_fisher":
        return regularizers.L2SPFisher(alpha)
    if scheme == "l1_sp":
        return regularizers.L1SP(alpha, epsilon=epsilon)
    if scheme == "group_lasso_sp":
        return regularizers.GroupLassoSP(alpha, epsilon=epsilon, group_axes=group_axes)
    return regularizers.GroupLassoSPFisher(alpha, epsilon=epsilon, group_axes=group_axes)


def _check_fisher(scheme, fisher, variables):
    if scheme not in FISHER_SCHEMES:
        if fisher is not None:
            raise ValueError(f"fisher was given but scheme {scheme!r} does not use it; choose "
                             f"one of {FISHER_SCHEMES} or drop `fisher`.")
        return None
    if fisher is None:
        raise ValueError(f"scheme {scheme!r} needs `fisher`: a mapping from variable path to "
                         "the source model's Fisher diagonal (tftransfer.fisher.diagonal or "
                         "tools/compute_fisher.py).")
    missing = [v.path for v in variables if v.path not in fisher]
    if missing:
        raise ValueError(f"fisher has no entry for {len(missing)} penalised variable(s), e.g. "
                         f"{missing[:5]}. Compute it on the source model with the same "
                         "architecture (keys are Keras variable paths).")
    for v in variables:
        shape = tuple(np.shape(fisher[v.path]))
        if shape != tuple(v.shape):
            raise ValueError(f"fisher[{v.path!r}] has shape {shape}, but the variable has shape "
                             f"{tuple(v.shape)}.")
    return {v.path: fisher[v.path] for v in variables}


def penalize(model, scheme, alpha, beta, new_layers=(), fisher: Optional[Dict] = None,
             epsilon=regularizers.DEFAULT_EPSILON, penalize_all_trainable=False):
    """Attaches ``scheme`` (strength ``alpha``) to the inherited weights of ``model`` and
    L2(``beta``) to ``new_layers``; returns a :class:`PenaltyPlan`.

    Args:
      model: a built Keras model whose current weights are the starting point.
      scheme: one of :data:`SCHEMES`; ``"none"`` attaches nothing, head included.
      alpha: strength on the inherited weights (>= 0).
      beta: strength of the L2 penalty on the new layers' weights (>= 0).
      new_layers: layers (or layer names) that did not exist in the source network.
      fisher: for the Fisher schemes, ``{variable.path: array}`` for every penalised
        inherited variable.
      epsilon: smoothing constant of L1-SP and the group-lasso schemes.
      penalize_all_trainable: also penalise biases and batch-norm parameters (TLlib's rule).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown scheme {scheme!r}; expected one of {SCHEMES}.")
    alpha = regularizers.check_strength(alpha, "alpha")
    beta = regularizers.check_strength(beta, "beta")
    regularizers.check_strength(epsilon, "epsilon")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: build it (or load its weights) "
                         "first, since its current weights become the starting point.")
    if hasattr(model, ANCHOR_ATTRIBUTE):
        raise ValueError(f"penalize() was already called on model {model.name!r}. Build a "
                         "fresh model (or reload it) to attach a different scheme.")
    if isinstance(new_layers, (str, keras.layers.Layer)):
        new_layers = [new_layers]
    layers = all_layers(model)
    new = _resolve_new_layers(model, new_layers, layers)
    if scheme == "none":
        if fisher is not None:
            raise ValueError("fisher was given but scheme 'none' does not use it.")
        return PenaltyPlan(scheme, alpha, beta, [], [], None)

    new_ids = {id(layer) for layer in new}
    inherited, fresh = [], []
    for layer in layers:
        target = fresh if id(layer) in new_ids else inherited
        target.extend(_penalised_variables(layer, penalize_all_trainable))
    fisher = _check_fisher(scheme, fisher, [v for v, _ in inherited])

    anchored = scheme != "l2"
    with model.distribute_strategy.scope():
        start = StartingPoint([v for v, _ in inherited] if anchored else [], fisher)
    setattr(model, ANCHOR_ATTRIBUTE, start)

    for variable, group_axes in inherited:
        regularizer = _scheme_regularizer(scheme, alpha, group_axes, epsilon)
        if anchored:
            regularizer.bind(start.references[variable.path],
                             start.fisher.get(variable.path) if fisher else None)
        variable.regularizer = regularizer
    for variable, _ in fresh:
        variable.regularizer = regularizers.L2(beta)
    return PenaltyPlan(scheme, alpha, beta, [v.path for v, _ in inherited],
                       [v.path for v, _ in fresh], start)


def starting_point(model):
    """The :class:`StartingPoint` that :func:`penalize` attached to ``model`` (or None)."""
    return getattr(model, ANCHOR_ATTRIBUTE, None)
