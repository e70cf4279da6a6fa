"""SPD: selective projection decay toward the starting point, on the optimizer side.

Tian, Huang & Kira, "Rethinking Weight Decay for Robust Fine-Tuning of Foundation Models",
NeurIPS 2024. For every variable (a "layer" in the paper: one parameter tensor) with
starting point ``W0``, at step ``t`` with gradient ``g_t`` and pre-update value ``W_{t-1}``:

    W~_t = base optimizer update of W_{t-1}              (e.g. Adam's step)
    c_t  = <-g_t, W_{t-1} - W0>                          (selection condition)
    if c_t < 0:   r_t = clip((||W~_t - W0|| - ||W_{t-1} - W0||) / ||W~_t - W0||, 0, 1)
                  W_t = W~_t - lambda * r_t * (W~_t - W0)
    else:         W_t = W~_t

so a layer is pulled back toward ``W0`` only when the loss gradient points toward it
(the update would go on moving away against the loss's own direction), by the fraction of
its newest growth in distance. Norms are Frobenius norms of the whole tensor. This follows
the authors' ``AdamSPD`` (github GT-RIPL/Selective-Projection-Decay, ``adamSPD.py``,
``condition = -sum(grad * (param - pre))``, ``_ratio``), there decaying every trainable
parameter toward its value when the optimizer was made (the new head toward its
initialisation); ``lambda`` is the optimizer's ``weight_decay`` there, ``strength`` here.
A ratio with ``||W~_t - W0|| = 0`` is taken as 0 (no decay). SPD replaces weight decay:
the base optimizer must have none (``weight_decay=None``).

How it plugs into ``model.fit`` (an optimizer wrapper, like
:mod:`tftransfer.models.lr_multipliers`)::

    optimizer = with_spd(keras.optimizers.Adam(1e-4), tm.model, strength=1.0)
    tm.model.compile(optimizer, loss); tm.model.fit(...)

The decay runs inside the optimizer's own per-variable ``update_step``, after the base
update, so ``model.fit``, custom loops and ``tf.distribute`` strategies see it unchanged.
Written with ``keras.ops``: backend-neutral. The config holds ``strength`` and the paths,
never arrays: an optimizer rebuilt from its config needs ``optimizer.bind(starting_point)``.
"""

from typing import Any, Mapping, Sequence

import keras
from absl import logging
from keras import ops

from tftransfer import regularizers
from tftransfer.methods.registry import MethodSpec, register
from tftransfer.optimizer_wrappers import PerVariableUpdate, wrapped_class
from tftransfer.variables import StartingPoint

DEFAULT_STRENGTH = 1.0

SPEC = register(MethodSpec(
    name="spd", kind="optimizer",
    paper="Tian, Huang & Kira, NeurIPS 2024 (Selective Projection Decay)",
    hyper_parameters={"strength": DEFAULT_STRENGTH},
    formula="if <-g_t, W_{t-1} - W0> < 0: W_t = W~_t - lambda * r_t * (W~_t - W0), "
            "r_t = clip((||W~_t-W0|| - ||W_{t-1}-W0||)/||W~_t-W0||, 0, 1)"))


def spd_update(before: Any, stepped: Any, gradient: Any, reference: Any,
               strength: float) -> tuple[Any, Any]:
    """``(W_t, decayed)``: the SPD rule applied to one variable (module docstring);
    ``decayed`` is 1.0 where the condition selected the decay, else 0.0."""
    before = ops.convert_to_tensor(before)
    stepped = ops.convert_to_tensor(stepped)
    reference = ops.cast(reference, stepped.dtype)
    gradient = ops.cast(gradient, stepped.dtype)
    condition = -ops.sum(gradient * (before - reference))
    new_norm = ops.sqrt(ops.sum(ops.square(stepped - reference)))
    old_norm = ops.sqrt(ops.sum(ops.square(before - reference)))
    safe = ops.where(new_norm > 0, new_norm, ops.ones_like(new_norm))
    ratio = ops.where(new_norm > 0, ops.clip((new_norm - old_norm) / safe, 0.0, 1.0),
                      ops.zeros_like(new_norm))
    decayed = ops.cast(condition < 0, stepped.dtype)
    return stepped - decayed * strength * ratio * (stepped - reference), decayed


class _Anchor:
    """``W0`` by path, held outside the optimizer's variable tracking."""

    def __init__(self, references=None, starting_point=None):
        self.references = dict(references or {})
        self.starting_point = starting_point


class _SPDMixin(PerVariableUpdate):
    """Selective projection decay of the listed variables after the base update."""

    def __init__(self, *args, spd_strength=DEFAULT_STRENGTH, spd_paths=None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.weight_decay:
            raise ValueError("SPD replaces weight decay: build the base optimizer with "
                             f"weight_decay=None (got {self.weight_decay}).")
        self.spd_strength = regularizers.check_strength(spd_strength, "strength")
        self.spd_paths = None if spd_paths is None else [str(p) for p in spd_paths]
        self._anchor = _Anchor()
        self._variable_references = []

    def bind(self, starting_point):
        """Sets ``W0``: a :class:`StartingPoint` or ``{path: array or variable}``."""
        references = (starting_point.references if isinstance(starting_point, StartingPoint)
                      else dict(starting_point))
        self._anchor = _Anchor(references, starting_point)
        return self

    def build(self, variables):
        super().build(variables)
        paths = [v.path for v in variables]
        wanted = set(paths if self.spd_paths is None else self.spd_paths)
        if self.spd_paths is not None and not wanted & set(paths):
            raise ValueError(f"spd_paths: none matches a trainable variable, e.g. "
                             f"{sorted(wanted)[:3]} vs {sorted(paths)[:3]}.")
        unbound = [p for p in paths if p in wanted and p not in self._anchor.references]
        if unbound:
            raise ValueError(f"this SPD optimizer has no starting point for {sorted(unbound)[:3]}"
                             " (e.g. it was rebuilt from its config): call "
                             "optimizer.bind(starting_point) before training.")
        self._variable_references = [p if p in wanted else None for p in paths]
        # Per variable, whether the last step decayed it (1.0) or not: for logs and tests.
        self.spd_decayed = [self.add_variable((), initializer="zeros", name="spd_decayed")
                            for _ in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        path = self._variable_references[index]
        if path is None:
            return super().update_step(gradient, variable, learning_rate)
        before = ops.copy(ops.convert_to_tensor(variable))
        result = super().update_step(gradient, variable, learning_rate)
        new, decayed = spd_update(before, ops.convert_to_tensor(variable), gradient,
                                  self._anchor.references[path], self.spd_strength)
        variable.assign(new)
        self.spd_decayed[index].assign(ops.cast(decayed, self.spd_decayed[index].dtype))
        return result

    def get_config(self):
        config = super().get_config()
        config["spd_strength"] = self.spd_strength
        config["spd_paths"] = None if self.spd_paths is None else list(self.spd_paths)
        return config


def spd_class(base: type[keras.optimizers.Optimizer]) -> type[keras.optimizers.Optimizer]:
    """The optimizer class ``SPD<Base>``: ``base`` plus ``spd_strength`` and ``spd_paths``
    (default: every trainable variable). Registered as serialisable (package
    ``tftransfer``)."""
    return wrapped_class(_SPDMixin, base, "SPD", "selective projection decay")


for _base in (keras.optimizers.SGD, keras.optimizers.Adam, keras.optimizers.RMSprop):
    spd_class(_base)  # registered up front so saved optimizers deserialise


def with_spd(optimizer: keras.optimizers.Optimizer, model: keras.Model,
             strength: float = DEFAULT_STRENGTH, paths: Sequence[str] | None = None,
             starting_point: StartingPoint | Mapping[str, Any] | None = None
             ) -> keras.optimizers.Optimizer:
    """A fresh optimizer of ``optimizer``'s class and config with SPD of strength
    ``strength`` (``lambda``) on ``paths`` (default: every trainable variable of ``model``,
    the authors' use), toward ``starting_point`` (default: the model's penalty starting
    point when it covers them, else a frozen copy of their current values)."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"with_spd expects a keras.optimizers.Optimizer instance, got "
                        f"{optimizer!r}.")
    if getattr(optimizer, "built", False):
        raise ValueError("with_spd: the optimizer has already been used; pass a fresh one.")
    from tftransfer import penalty
    from tftransfer.variables import select_variables
    variables = select_variables(model, paths)
    if starting_point is None:
        existing = penalty.starting_point(model)
        if existing is not None and existing.covers(variables):
            starting_point = existing
        else:
            with penalty.scope(model):
                starting_point = StartingPoint(variables, name="spd_starting_point")
    logging.info("spd: selective projection decay (strength %g) of %d variables.",
                 strength, len(variables))
    config = dict(optimizer.get_config(), spd_strength=strength,
                  spd_paths=None if paths is None else [v.path for v in variables])
    return spd_class(type(optimizer)).from_config(config).bind(starting_point)
