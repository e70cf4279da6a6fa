"""L2-SP-k: L2-SP with a per-layer strength that grows toward the input.

From the TensorFlow code of the L2-SP authors (Li, Grandvalet & Davoine), github
holyseven/TransferLearningClassification, ``model/network_base.py`` at commit 1426356
(2018-07-18), ``Network._decay``, ``mode == 2`` ("Applying L2-SP-k regularization",
lines 173-206). Their rule: list the inherited kernels ("weights" variables, the new
``logits`` layer excluded) in the order of ``tf.trainable_variables()``, input to output,
``i = 0 .. N-1``; kernel ``i`` gets the multiplier ``k_i = N - i``, except a residual
shortcut (projection) kernel, which gets ``N - i + 3`` "because these layers are parallel
to another three layers": their shortcut is created after the three convolutions of its
bottleneck, so ``N - i + 3`` is the multiplier of the block's first convolution, the one
reading the same input. The penalty is then::

    Omega(w) = alpha * sum_i k_i * 1/2 ||w_i - w0_i||^2  +  beta/2 * ||w_new||^2

so the first layer is pulled toward its starting point ``N`` times harder than the last.

Here: the kernels of :func:`tftransfer.penalty.kernel_variables` in the model's layer order,
trainable ones only (the authors' ``tf.trainable_variables()``: frozen kernels are not
counted and get multiplier 0), ordered as the authors' network lists them: within each unit
(:mod:`tftransfer.models.units`: a residual block) the shortcut kernels come after the
block's other kernels. A shortcut takes the multiplier of the first other kernel of its
unit (the authors' ``+3`` for a bottleneck of three convolutions; ``+2`` for the basic
block of the small ResNet). Shortcuts are recognised by name (:data:`SHORTCUT`: ``shortcut``,
keras.applications' and the torch layout's ``_0_conv``, torchvision's ``downsample``), or by
the ``is_shortcut`` predicate given.

How it plugs into ``model.fit`` (a weight penalty, ``model.losses``)::

    plan = penalize_l2_sp_k(tm.model, alpha, beta, new_layers=tm.new_layers)
    tm.model.compile(...); tm.model.fit(...)

It is :func:`tftransfer.penalty.penalize` with the ``l2_sp`` scheme whose regularizer on
kernel ``i`` has strength ``alpha * k_i`` (``tftransfer.regularizers.L2SP``): the same
starting point, ``.keras`` round trip and backends as L2-SP.
"""
import re
from typing import Callable, Mapping, Sequence

import keras

from tftransfer import penalty, regularizers
from tftransfer.methods.registry import MethodSpec, register
from tftransfer.models.units import unit_of

SHORTCUT = re.compile(r"(shortcut|_0_conv$|downsample)")

SPEC = register(MethodSpec(
    name="l2_sp_k", kind="weight_penalty",
    paper="Li, Grandvalet & Davoine 2018, authors' TF code (holyseven/"
          "TransferLearningClassification, model/network_base.py, mode 2)",
    hyper_parameters={"alpha": 0.1, "beta": 0.01},
    formula="alpha * sum_i (N - i) * 1/2 ||w_i - w0_i||^2 + beta/2 ||w_new||^2, i = depth rank "
            "of inherited kernel i (shortcut: its block's first kernel)"))


def _default_is_shortcut(layer):
    return bool(SHORTCUT.search(layer.name))


def depth_multipliers(model: keras.Model,
                      new_layers: str | keras.Layer | Sequence[str | keras.Layer] = (),
                      is_shortcut: Callable[[keras.Layer], bool] | None = None
                      ) -> dict[str, int]:
    """``{kernel path: k}`` of the trainable inherited kernels of ``model`` (see the module
    docstring): ``N`` for the first, 1 for the last, a shortcut as its block's first."""
    is_shortcut = is_shortcut or _default_is_shortcut
    if isinstance(new_layers, str):
        new_layers = [new_layers]
    layers = penalty.all_layers(model)
    new_ids = {id(l) for l in penalty.resolve_new_layers(model, list(new_layers), layers)}
    trainable = {id(v) for v in model.trainable_variables}
    kernels = []  # (unit key, shortcut?, model position, layer, variable)
    first_of_unit = {}
    for layer in layers:
        if id(layer) in new_ids:
            continue
        for variable, _ in penalty.kernel_variables(layer):
            if id(variable) not in trainable:
                continue
            position = len(kernels)
            unit = unit_of(layer.name)
            key = first_of_unit.setdefault(unit, position) if unit is not None else position
            kernels.append((key, bool(is_shortcut(layer)), position, unit, variable))
    kernels.sort(key=lambda entry: entry[:3])
    n = len(kernels)
    table, unit_first = {}, {}
    for i, (_, shortcut, _, unit, variable) in enumerate(kernels):
        if not shortcut:
            table[variable.path] = float(n - i)
            if unit is not None:
                unit_first.setdefault(unit, float(n - i))
    for i, (_, shortcut, _, unit, variable) in enumerate(kernels):
        if shortcut:
            table[variable.path] = unit_first.get(unit, float(n - i))
    return table


def penalize_l2_sp_k(model: keras.Model, alpha: float, beta: float,
                     new_layers: str | keras.Layer | Sequence[str | keras.Layer] = (),
                     multipliers: Mapping[str, float] | None = None,
                     is_shortcut: Callable[[keras.Layer], bool] | None = None
                     ) -> penalty.PenaltyPlan:
    """Attaches L2-SP-k to ``model``: L2-SP with strength ``alpha * k`` on each inherited
    kernel (``k`` from :func:`depth_multipliers`, or the ``multipliers`` table given: paths
    missing from it get 0) and L2(``beta``) on ``new_layers``. Returns the
    :class:`~tftransfer.penalty.PenaltyPlan` (``scheme="l2_sp_k"``)."""
    alpha = regularizers.check_strength(alpha, "alpha")
    if multipliers is None:
        multipliers = depth_multipliers(model, new_layers, is_shortcut)
    multipliers = {p: regularizers.check_strength(k, f"multipliers[{p!r}]")
                   for p, k in multipliers.items()}
    plan = penalty.penalize(model, "l2_sp", alpha, beta, new_layers=new_layers)
    inherited = set(plan.inherited)
    for layer in penalty.all_layers(model):
        for variable, _ in penalty.kernel_variables(layer):
            if variable.path in inherited:
                variable.regularizer.alpha = alpha * multipliers.get(variable.path, 0.0)
    plan.scheme = "l2_sp_k"
    return plan
