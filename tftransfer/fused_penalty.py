"""The fused penalty path: the penalty's closed-form gradient added inside the optimizer step.

With ``plan = tftransfer.penalize(model, scheme, alpha, beta, new_layers, path="fused")``
nothing enters ``model.losses``; ``optimizer = fused_optimizer(optimizer, plan)`` then updates
each penalised variable ``w`` (regularizer ``Omega_w`` of the plan) with the gradient

    g'(w) = g(w) + grad Omega_w(w)        (``Omega_w.value_and_gradient``, closed form)

handed to the base optimizer's own ``update_step`` *before* its momentum, learning rate and
any other wrapper's logic: the coupled penalty of the paper, the same update as
differentiating ``data loss + sum(model.losses)`` (the ``path="loss"`` default), without the
backward pass through the penalty. The value ``Omega_w(w)`` comes from the same ``w - w0``
and is kept per variable in a scalar optimizer variable; :func:`penalty_value` sums them (the
penalty at the weights *before* the last update, as ``model.fit``'s ``loss`` is) and
:class:`PenaltyLog` puts it into ``model.fit``'s logs as ``penalty``.

Where the gradient is added (Keras 3 ``Optimizer.apply``): after the division by
``loss_scale_factor`` and after ``LossScaleOptimizer`` unscales (wrap the inner optimizer:
``compile(auto_scale_loss=True)`` does), after the all-reduce of ``tf.distribute``
(``update_step`` runs on the summed gradient, so the penalty gradient enters once, as the
loss path's ``1/replicas``-scaled penalty summed over replicas does), and after gradient
clipping, which therefore would clip the data gradient alone: ``clipnorm``, ``clipvalue``
and ``global_clipnorm`` are refused. Other per-variable wrappers (learning-rate multipliers,
MARS-PGM, SPD) must be applied first: this mixin must be the outermost one, so that they see
``g'`` as on the loss path (SPD's selection reads the gradient); the reverse order raises.

The config holds the penalised paths, never arrays: an optimizer rebuilt from its config needs
``optimizer.bind(plan)`` before training (building it unbound raises).
"""
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Union

import keras
from keras import ops

from tftransfer.optimizer_wrappers import PerVariableUpdate, wrapped_class

if TYPE_CHECKING:  # annotations only (penalty does not import this module at runtime)
    from tftransfer.penalty import PenaltyPlan

PREFIX = "FusedPenalty"


class _Penalties:
    """The regularizers by path, held outside the optimizer's variable tracking (their
    ``w0`` copies are not optimizer state)."""

    def __init__(self, by_path=None):
        self.by_path = dict(by_path or {})


class _FusedPenaltyMixin(PerVariableUpdate):
    """Adds each penalised variable's closed-form penalty gradient to its gradient, before
    the base update (module docstring)."""

    def __init__(self, *args, fused_penalty_paths=None, **kwargs):
        super().__init__(*args, **kwargs)
        order = [c for c in type(self).__mro__[1:] if issubclass(c, PerVariableUpdate)]
        if order[0] is not _FusedPenaltyMixin:
            raise ValueError(
                f"{type(self).__name__}: the fused penalty must be the outermost optimizer "
                f"wrapper (it is under {order[0].__name__}), so that the others see the "
                "penalised gradient. Apply with_lr_multipliers / with_mars_pgm / with_spd "
                "first, then tftransfer.fused_optimizer.")
        clipping = {k: getattr(self, k, None) for k in ("clipnorm", "clipvalue",
                                                        "global_clipnorm")}
        if any(v is not None for v in clipping.values()):
            raise ValueError(
                f"fused penalty with gradient clipping {clipping}: Keras clips before "
                "update_step, so the data gradient would be clipped without the penalty's, "
                "unlike the loss path. Use penalize(..., path='loss') with clipping.")
        self.fused_penalty_paths = sorted(str(p) for p in (fused_penalty_paths or []))
        self._penalties = _Penalties()
        self._variable_penalties = []
        self._penalty_values = []

    def bind(self, plan: Union["PenaltyPlan", Mapping[str, Any]]) -> keras.optimizers.Optimizer:
        """Sets the regularizers: a fused :class:`tftransfer.penalty.PenaltyPlan` or
        ``{path: regularizer}``; returns the optimizer."""
        by_path = dict(getattr(plan, "regularizers", plan))
        missing = [p for p in self.fused_penalty_paths if p not in by_path]
        if missing:
            raise ValueError(f"the plan has no regularizer for {len(missing)} penalised "
                             f"path(s) of this optimizer, e.g. {missing[:3]}.")
        self._penalties = _Penalties({p: by_path[p] for p in self.fused_penalty_paths})
        return self

    def build(self, variables):
        super().build(variables)
        by_path = self._penalties.by_path
        unbound = [p for p in self.fused_penalty_paths if p not in by_path]
        if unbound:
            raise ValueError(f"this fused-penalty optimizer is not bound to its penalty (no "
                             f"regularizer for {unbound[:3]}), e.g. it was rebuilt from its "
                             "config. Call optimizer.bind(plan) before training.")
        paths = {v.path for v in variables}
        if by_path and not paths & set(by_path):
            raise ValueError("fused penalty: none of the penalised paths is a variable this "
                             f"optimizer updates, e.g. {sorted(by_path)[:3]} vs "
                             f"{sorted(paths)[:3]}. Build it from the plan of the model "
                             "being trained.")
        self._variable_penalties = [by_path.get(v.path) for v in variables]
        penalised = [i for i, r in enumerate(self._variable_penalties) if r is not None]
        self._penalty_values = [self.add_variable((), dtype="float32", name=f"penalty_{k}")
                                for k in range(len(penalised))]
        self._value_index = dict(zip(penalised, range(len(penalised))))

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        regularizer = self._variable_penalties[index]
        if regularizer is not None:
            value, penalty_gradient = regularizer.value_and_gradient(variable)
            gradient = gradient + ops.cast(penalty_gradient, gradient.dtype)
            self.assign(self._penalty_values[self._value_index[index]],
                        ops.cast(value, "float32"))
        return super().update_step(gradient, variable, learning_rate)

    def penalty_value(self) -> Any:
        """The penalty at the weights before the last update (0 before the first)."""
        if not self._penalty_values:
            return ops.zeros((), "float32")
        return ops.sum(ops.stack([v.value for v in self._penalty_values]))

    def get_config(self):
        config = super().get_config()
        config["fused_penalty_paths"] = list(self.fused_penalty_paths)
        return config


def fused_class(base: type) -> type:
    """The optimizer class ``FusedPenalty<Base>``: ``base`` plus the fused penalty.
    Registered as serialisable (package ``tftransfer``)."""
    return wrapped_class(_FusedPenaltyMixin, base, PREFIX, "a fused penalty")


def fused_optimizer(optimizer: keras.optimizers.Optimizer,
                    plan: "PenaltyPlan") -> keras.optimizers.Optimizer:
    """A fresh optimizer with ``optimizer``'s class (wrappers included) and config that adds
    the penalty of ``plan`` (from ``penalize(..., path="fused")``) inside its step.

    Raises:
      TypeError: ``optimizer`` is not a Keras optimizer.
      ValueError: a used optimizer, a ``LossScaleOptimizer`` (wrap its inner optimizer), a
        plan of the loss path (its penalty is in ``model.losses`` already), clipping.
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError("fused_optimizer expects a keras.optimizers.Optimizer instance, got "
                        f"{optimizer!r}.")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise ValueError("fused_optimizer: pass the inner optimizer, not a LossScaleOptimizer "
                         "(the penalty gradient is added after unscaling); "
                         "compile(..., auto_scale_loss=True) adds the loss scaling.")
    if getattr(optimizer, "built", False):
        raise ValueError("fused_optimizer: the optimizer has already been used; pass a fresh "
                         "one (its state is not carried over).")
    if getattr(plan, "path", None) != "fused":
        raise ValueError("fused_optimizer needs the plan of penalize(..., path='fused'); a "
                         "plan of the loss path has its penalty in model.losses already "
                         "(it would count twice).")
    config = dict(optimizer.get_config(), fused_penalty_paths=sorted(plan.regularizers))
    fused = fused_class(type(optimizer)).from_config(config)
    if hasattr(optimizer, "_anchor"):  # the W0 of MARS-PGM / SPD, held outside the config
        fused._anchor = optimizer._anchor
    return fused.bind(plan)


def penalty_value(model_or_optimizer: Any) -> Optional[float]:
    """The fused penalty of the last step of ``model_or_optimizer`` (a model compiled with a
    fused optimizer, or the optimizer, loss-scaled or not) as a float, or None when its
    optimizer is not fused."""
    optimizer = getattr(model_or_optimizer, "optimizer", model_or_optimizer)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if not isinstance(optimizer, _FusedPenaltyMixin):
        return None
    return float(ops.convert_to_numpy(optimizer.penalty_value()))


class PenaltyLog(keras.callbacks.Callback):
    """Writes the fused penalty (:func:`penalty_value`) into ``model.fit``'s batch and epoch
    logs as ``penalty`` (the penalty at the weights before the last update); nothing for a
    model whose optimizer is not fused."""

    def _log(self, logs):
        value = penalty_value(self.model)
        if value is not None and logs is not None:
            logs["penalty"] = value

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._log(logs)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._log(logs)


for _base in (keras.optimizers.SGD, keras.optimizers.Adam, keras.optimizers.AdamW,
              keras.optimizers.RMSprop):
    fused_class(_base)  # registered up front so saved models deserialise
