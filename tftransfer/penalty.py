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
adds nothing. The schemes are those of Li, Grandvalet & Davoine 2018, "Explicit Inductive
Bias for Transfer Learning with Convolutional Networks", Sections 3 and 4.

Any Keras 3 model works, on any backend: functional and Sequential models, subclassed ones
and KerasHub models (``keras_hub.models.Backbone`` and tasks), whose nested layers are
searched for Conv / DepthwiseConv / Dense kernels.

``.keras`` files: every regularizer is also set in its layer's config
(``kernel_regularizer`` ...), and the "-SP" ones save ``w0`` beside the layer's weights.
For a functional or Sequential model ``keras.models.load_model`` therefore returns the model
with the same penalty (same ``sum(model.losses)``) and :func:`starting_point` gives its
``W0``. A model rebuilt from constructor arguments (KerasHub, most subclassed models) loses
its layers' regularizers on load: :func:`penalize` and ``model.save`` then warn; re-attach
with ``penalize`` on the pretrained model followed by ``model.load_weights(path)``
(docs/backends.md).
"""
import contextlib
import dataclasses
import json
import warnings
from typing import (Any, ContextManager, Dict, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import keras
import numpy as np

from tftransfer import regularizers
from tftransfer.variables import StartingPoint

SCHEMES = ("none", "l2", "l2_sp", "l2_sp_fisher", "l1_sp", "group_lasso_sp",
           "group_lasso_sp_fisher")
FISHER_SCHEMES = ("l2_sp_fisher", "group_lasso_sp_fisher")
PATHS = ("loss", "fused")
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
    path: str = "loss"
    regularizers: Dict[str, object] = dataclasses.field(default_factory=dict)
    """``{variable.path: regularizer}``, the penalty of each variable (both paths)."""


def all_layers(model: keras.Layer) -> List[keras.Layer]:
    """Every layer nested in ``model`` (depth first), the model itself excluded."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def kernel_variables(layer: keras.Layer) -> List[Tuple[keras.Variable, Tuple[int, ...]]]:
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


def resolve_new_layers(model: keras.Model,
                       new_layers: Sequence[Union[str, keras.Layer]],
                       layers: Sequence[keras.Layer]) -> List[keras.Layer]:
    """The layers of ``new_layers`` (layer names or layers of ``model``) with all their
    sublayers, looked up among ``layers`` (``all_layers(model)``).

    Raises:
      ValueError: an entry that names no layer of ``layers`` (listing the layers with
        weights), or a layer that is not part of ``model``.
    """
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


def _config_slot(layer, variable):
    """The attribute of ``layer`` whose regularizer its config saves for ``variable``
    (``kernel_regularizer``, ``depthwise_regularizer`` ...), or None."""
    for attribute in list(vars(layer)):
        if not attribute.endswith("_regularizer") or attribute == "activity_regularizer":
            continue
        stem = attribute[:-len("_regularizer")]
        owners = [stem, stem + "_kernel"] + (["kernel"] if stem == "depthwise" else [])
        if any(getattr(layer, name, None) is variable for name in owners):
            return attribute
    return None


def attach(layer: keras.Layer, variable: keras.Variable,
           regularizer: keras.regularizers.Regularizer) -> bool:
    """Sets ``regularizer`` on ``variable`` (so that it enters ``model.losses``) and in the
    attribute of ``layer``'s config that saves it (``kernel_regularizer`` ...), so that a
    saved model rebuilds it; returns True if the config holds it."""
    variable.regularizer = regularizer
    slot = _config_slot(layer, variable)
    if slot is not None:
        setattr(layer, slot, regularizer)
    return slot is not None


def _carried_by_config(model, regularizers_attached):
    """Whether ``model``'s config holds all ``regularizers_attached`` (so that load_model
    rebuilds them)."""
    try:
        text = json.dumps(keras.saving.serialize_keras_object(model), default=str)
    except Exception:  # a model that cannot serialise its config cannot be reloaded either
        return False
    return text.count('"registered_name": "tftransfer>') >= regularizers_attached


def _tftransfer_regularized(model):
    return [v.path for v in model.trainable_variables
            if isinstance(getattr(v, "regularizer", None),
                          (regularizers.L2, regularizers.AnchoredRegularizer))]


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
                         "tftransfer fisher).")
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


def penalize(model: keras.Model, scheme: str, alpha: float, beta: float,
             new_layers: Union[str, keras.Layer, Sequence[Union[str, keras.Layer]]] = (),
             fisher: Optional[Mapping[str, Any]] = None,
             epsilon: float = regularizers.DEFAULT_EPSILON,
             penalize_all_trainable: bool = False, path: str = "loss") -> PenaltyPlan:
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
      path: ``"loss"`` (default): the regularizers enter ``model.losses`` and ``model.fit``
        differentiates them. ``"fused"``: nothing enters ``model.losses``; compile with
        ``tftransfer.fused_optimizer(optimizer, plan)``, which adds each regularizer's
        closed-form gradient to its variable's gradient before the optimizer's update (the
        same update), and log with ``tftransfer.fused_penalty.PenaltyLog`` (no ``.keras``
        round trip of the penalty: re-bind with ``optimizer.bind(plan)``).

    ``.keras`` files: a functional or Sequential model saved with ``model.save("m.keras")``
    comes back from ``keras.models.load_model`` with the same penalty and starting point
    (:func:`starting_point`). A model rebuilt from constructor arguments (KerasHub, most
    subclassed models) cannot: this call and ``model.save`` warn, and the way back is
    ``penalize`` on the rebuilt pretrained model, then ``model.load_weights(path)``. An
    "-SP" regularizer without its starting point raises when called, never returns 0.
    Runs on the TensorFlow, JAX and PyTorch backends (docs/backends.md).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown scheme {scheme!r}; expected one of {SCHEMES}.")
    if path not in PATHS:
        raise ValueError(f"Unknown path {path!r}; expected one of {PATHS}.")
    alpha = regularizers.check_strength(alpha, "alpha")
    beta = regularizers.check_strength(beta, "beta")
    regularizers.check_strength(epsilon, "epsilon")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: build it (or load its weights) "
                         "first, since its current weights become the starting point.")
    if hasattr(model, ANCHOR_ATTRIBUTE):
        raise ValueError(f"penalize() was already called on model {model.name!r}. Build a "
                         "fresh model (or reload it) to attach a different scheme.")
    carried = _tftransfer_regularized(model)
    if carried:
        raise ValueError(f"model {model.name!r} already carries tftransfer penalties (e.g. on "
                         f"{carried[:3]}), probably reloaded from a .keras file with them; "
                         "tftransfer.starting_point(model) gives their W0. Build the "
                         "pretrained model afresh to attach another scheme.")
    if isinstance(new_layers, (str, keras.layers.Layer)):
        new_layers = [new_layers]
    layers = all_layers(model)
    new = resolve_new_layers(model, new_layers, layers)
    if scheme == "none":
        if fisher is not None:
            raise ValueError("fisher was given but scheme 'none' does not use it.")
        return PenaltyPlan(scheme, alpha, beta, [], [], None, path)

    new_ids = {id(layer) for layer in new}
    inherited, fresh = [], []
    for layer in layers:
        target = fresh if id(layer) in new_ids else inherited
        target.extend((v, a, layer) for v, a in _penalised_variables(layer, penalize_all_trainable))
    fisher = _check_fisher(scheme, fisher, [v for v, _, _ in inherited])

    anchored = scheme != "l2"
    with scope(model):
        start = StartingPoint([v for v, _, _ in inherited] if anchored else [], fisher)
    setattr(model, ANCHOR_ATTRIBUTE, start)

    by_path = {}
    for variable, group_axes, layer in inherited:
        regularizer = _scheme_regularizer(scheme, alpha, group_axes, epsilon)
        if anchored:
            regularizer.bind(start.references[variable.path],
                             start.fisher.get(variable.path) if fisher else None)
        by_path[variable.path] = (layer, variable, regularizer)
    for variable, _, layer in fresh:
        by_path[variable.path] = (layer, variable, regularizers.L2(beta))
    if path == "loss":
        in_config = sum(attach(*entry) for entry in by_path.values())
        if by_path and not (in_config == len(by_path) and _carried_by_config(model, in_config)):
            for _, _, regularizer in by_path.values():
                regularizer.lost_on_load = True
            warnings.warn(regularizers.LOST_ON_LOAD, stacklevel=2)
    return PenaltyPlan(scheme, alpha, beta, [v.path for v, _, _ in inherited],
                       [v.path for v, _, _ in fresh], start, path,
                       {p: r for p, (_, _, r) in by_path.items()})


def scope(model: keras.Model) -> ContextManager:
    """A context manager: the scope of ``model``'s ``tf.distribute`` strategy on TensorFlow
    (the driver's strategies), so that variables made in it (copies of ``W0``, frozen
    networks) are mirrored like the model's; a no-op context elsewhere."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def starting_point(model: keras.Model) -> Optional[StartingPoint]:
    """The :class:`StartingPoint` of ``model``'s penalty: the one :func:`penalize` attached,
    else (a model reloaded from a ``.keras`` file) one around the ``w0`` of its bound "-SP"
    regularizers, kept on the model; None when the model has no penalty."""
    start = getattr(model, ANCHOR_ATTRIBUTE, None)
    if start is not None:
        return start
    references, fisher = {}, {}
    for v in model.trainable_variables:
        regularizer = getattr(v, "regularizer", None)
        if isinstance(regularizer, regularizers.AnchoredRegularizer) and regularizer.bound:
            references[v.path] = regularizer.reference
            if regularizer.fisher is not None:
                fisher[v.path] = regularizer.fisher
    if not references:
        return None
    start = StartingPoint.of(references, fisher)
    setattr(model, ANCHOR_ATTRIBUTE, start)
    return start
