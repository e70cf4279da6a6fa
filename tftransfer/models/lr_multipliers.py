"""Per-layer-group learning-rate multipliers for any Keras 3 optimizer.

``with_lr_multipliers(optimizer, multipliers)`` returns an optimizer of the same class and
configuration whose update of variable ``v`` uses the learning rate ``lr * m(v)``, where
``m(v) = multipliers.get(v.path, 1.0)`` and ``lr`` is the optimizer's current learning rate
(schedules included), on every backend (PyTorch included:
``tftransfer.optimizer_wrappers.PerVariableUpdate``). For SGD this is ``w <- w - lr * m * g`` (with momentum ``mu``:
``v <- mu * v - lr * m * g; w <- w + v``). The multiplier enters the optimizer's own
per-variable ``update_step``, so it works with ``model.fit``, custom loops and
``tf.distribute`` strategies unchanged, and adaptive optimizers (Adam) scale their step, not
their gradient. Decoupled weight decay (``weight_decay=``) is not scaled.

``group_multipliers`` builds the table from units, layer names or layers, e.g. the paper's
"smaller learning rates for lower layers" (Hong, transfer lecture; docs/recipe.md)::

    names = tm.units                                  # conv1, conv2_block1, ...
    table = group_multipliers(tm.model, [(names[:11], 0.01), (names[11:], 0.1),
                                          (tm.new_layers, 1.0)])
    opt = with_lr_multipliers(keras.optimizers.SGD(0.01, momentum=0.9), table)
"""
import math
from typing import Any, Mapping, Sequence

import keras

from tftransfer.models.units import unit_of
from tftransfer.optimizer_wrappers import PerVariableUpdate, wrapped_class


class _LRMultiplierMixin(PerVariableUpdate):
    """Scales the learning rate of each variable's update by its multiplier (by path)."""

    def __init__(self, *args, lr_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = {str(path): _check_multiplier(path, m)
                               for path, m in (lr_multipliers or {}).items()}
        self._variable_multipliers = []

    def build(self, variables):
        super().build(variables)
        paths = {v.path for v in variables}
        if self.lr_multipliers and not paths & set(self.lr_multipliers):
            raise ValueError(
                "lr_multipliers: none of the paths matches a trainable variable, e.g. "
                f"{sorted(self.lr_multipliers)[:3]} vs {sorted(paths)[:3]}. Build the table "
                "with group_multipliers(model, ...) on the model being trained.")
        self._variable_multipliers = [self.lr_multipliers.get(v.path, 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._variable_multipliers[self._get_variable_index(variable)]
        if multiplier != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, multiplier)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["lr_multipliers"] = dict(self.lr_multipliers)
        return config


def _check_multiplier(path, value):
    value = float(value)
    if not 0.0 <= value < math.inf:
        raise ValueError(f"lr_multipliers[{path!r}] = {value}: multipliers must be finite "
                         "and >= 0.")
    return value


def multiplier_class(base: type[keras.optimizers.Optimizer]) -> type[keras.optimizers.Optimizer]:
    """The optimizer class ``LRMultiplier<Base>``: ``base`` plus the ``lr_multipliers``
    argument. Registered as serialisable (package ``tftransfer``)."""
    return wrapped_class(_LRMultiplierMixin, base, "LRMultiplier", "learning-rate multipliers")


for _base in (keras.optimizers.SGD, keras.optimizers.Adam, keras.optimizers.AdamW,
              keras.optimizers.RMSprop):
    multiplier_class(_base)  # registered up front so saved models deserialise


def with_lr_multipliers(optimizer: keras.optimizers.Optimizer,
                        multipliers: Mapping[str, float]) -> keras.optimizers.Optimizer:
    """A fresh optimizer with ``optimizer``'s class and config plus ``multipliers``
    (``{variable.path: float >= 0}``; missing variables use 1)."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError("with_lr_multipliers expects a keras.optimizers.Optimizer instance "
                        f"(e.g. keras.optimizers.SGD(0.01, momentum=0.9)), got {optimizer!r}.")
    if getattr(optimizer, "built", False):
        raise ValueError("with_lr_multipliers: the optimizer has already been used; pass a "
                         "fresh one (its state is not carried over).")
    config = dict(optimizer.get_config(), lr_multipliers=dict(multipliers))
    return multiplier_class(type(optimizer)).from_config(config)


def _members(model, entry):
    """Layers designated by ``entry``: a unit name, a layer name, a layer or a list of those."""
    if isinstance(entry, (list, tuple)):
        return [layer for e in entry for layer in _members(model, e)]
    if isinstance(entry, keras.layers.Layer):
        if not any(entry is layer for layer in model.layers):
            raise ValueError(f"Layer {entry.name!r} is not a layer of model {model.name!r}.")
        return [entry]
    by_unit = [layer for layer in model.layers if unit_of(layer.name) == entry]
    if by_unit:
        return by_unit
    for layer in model.layers:
        if layer.name == entry:
            return [layer]
    known = [unit for unit in dict.fromkeys(unit_of(layer.name) for layer in model.layers)
             if unit]
    raise ValueError(f"{entry!r} is neither a unit nor a layer of model {model.name!r}; its "
                     f"units are {known} (any layer name, e.g. 'predictions', works too).")


def group_multipliers(model: keras.Model,
                      groups: Mapping[Any, float] | Sequence[tuple[Any, float]]
                      ) -> dict[str, float]:
    """``{variable.path: multiplier}`` for ``groups``: ``[(members, multiplier), ...]`` (or a
    dict ``{member: multiplier}``) where members are unit names, layer names or layers.
    Every variable of a member's layers (weights of nested layers included) gets the group's
    multiplier; a variable in two groups is an error."""
    items = groups.items() if isinstance(groups, dict) else groups
    table = {}
    for members, multiplier in items:
        for layer in _members(model, members):
            for variable in layer.weights:
                if variable.path in table:
                    raise ValueError(f"Variable {variable.path!r} is in two groups; each "
                                     "layer may belong to one group only.")
                table[variable.path] = _check_multiplier(variable.path, multiplier)
    return table
