"""MARS-PGM: projected gradient fine-tuning inside a ball around the starting point.

Gouk, Hospedales & Pontil, "Distance-Based Regularisation of Deep Networks for Fine-Tuning",
ICLR 2021. After every optimizer update, each inherited layer ``l`` is projected back onto a
ball ``||W_l - W0_l|| <= gamma_l`` around its starting point ``W0_l``:

- ``norm="mars"``: the maximum absolute row sum (the infinity operator norm)
  ``max_j sum_i |W_ji - W0_ji|``, a row being the fan-in of one output unit or channel (for a
  convolution, the whole filter of one output channel). As in the authors' code (github
  henrygouk/mars-finetuning, ``lipschitz.py``, ``LInfLipschitzConstraint``), each row ``j``
  whose L1 distance exceeds ``gamma`` is scaled back toward ``W0``::

      W_j <- W0_j + (W_j - W0_j) / max(1, ||W_j - W0_j||_1 / gamma)

  which lands every row, hence the max, on or inside the ball (a scaling, not the Euclidean
  projection onto the L1 ball);
- ``norm="frobenius"``: ``||W - W0||_F <= gamma`` (L2-SP as a constraint), with the exact
  Euclidean projection ``W <- W0 + (W - W0) / max(1, ||W - W0||_F / gamma)``
  (``FrobeniusConstraint`` of the same file).

The new layers (the target classifier) are left free by default; with a finite
``gamma_new`` they are kept in the same kind of ball around zero, as the authors constrain
their classifier (``add_dense_constraint(..., zero=None)`` in ``finetune.py``). Kernels only
(convolution, depthwise and dense: :func:`tftransfer.penalty.kernel_variables`, whose group
axes are the rows); biases and batch norm are not projected (the authors' optional
batch-norm constraint is not implemented).

How it plugs into ``model.fit`` (an optimizer wrapper, like
:mod:`tftransfer.models.lr_multipliers`)::

    optimizer = with_mars_pgm(keras.optimizers.SGD(0.01, momentum=0.9), tm.model,
                              gamma=5.0, new_layers=tm.new_layers)
    tm.model.compile(optimizer, loss); tm.model.fit(...)

The projection runs inside the optimizer's own per-variable ``update_step`` (after the base
update), so ``model.fit``, custom loops and ``tf.distribute`` strategies see it unchanged.
Written with ``keras.ops``: backend-neutral. The optimizer's config holds the radii and
axes, never arrays: one rebuilt from its config (``keras.optimizers.deserialize``) must be
bound again with ``optimizer.bind(starting_point)`` before its first step (``build`` raises
otherwise).
"""
import math
from typing import Any, Mapping, Sequence

import keras
from absl import logging
from keras import ops

from tftransfer import penalty
from tftransfer.methods.registry import MethodSpec, register
from tftransfer.optimizer_wrappers import PerVariableUpdate, wrapped_class
from tftransfer.variables import StartingPoint

NORMS = ("mars", "frobenius")
DEFAULT_GAMMA = 5.0

SPECS = {
    "mars": register(MethodSpec(
        name="mars_pgm", kind="optimizer",
        paper="Gouk, Hospedales & Pontil, ICLR 2021 (Distance-Based Regularisation)",
        hyper_parameters={"gamma": DEFAULT_GAMMA, "gamma_new": math.inf},
        formula="after each update W_j <- W0_j + (W_j - W0_j)/max(1, ||W_j - W0_j||_1/gamma) "
                "per row j: max_j ||W_j - W0_j||_1 <= gamma")),
    "frobenius": register(MethodSpec(
        name="frobenius_pgm", kind="optimizer",
        paper="Gouk, Hospedales & Pontil, ICLR 2021 (Distance-Based Regularisation)",
        hyper_parameters={"gamma": DEFAULT_GAMMA, "gamma_new": math.inf},
        formula="after each update W <- W0 + (W - W0)/max(1, ||W - W0||_F/gamma)")),
}


def project(weights: Any, center: Any, radius: float, norm: str,
            axes: Sequence[int] | None = None) -> Any:
    """``weights`` brought into the ball of ``norm`` (:data:`NORMS`), radius ``radius``
    (> 0, ``inf``: unchanged) around ``center`` (an array or 0); ``axes``: the axes of one
    row for ``"mars"`` (default: all but the last)."""
    weights = ops.convert_to_tensor(weights)
    if math.isinf(radius):
        return weights
    center = ops.cast(center, weights.dtype) if center is not None else ops.zeros_like(weights)
    deviation = weights - center
    if norm == "mars":
        axes = tuple(range(len(weights.shape) - 1)) if axes is None else tuple(axes)
        size = ops.sum(ops.abs(deviation), axis=axes, keepdims=True)
    elif norm == "frobenius":
        size = ops.sqrt(ops.sum(ops.square(deviation)))
    else:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}.")
    return center + deviation / ops.maximum(1.0, size / radius)


def distance(weights: Any, center: Any, norm: str, axes: Sequence[int] | None = None) -> float:
    """The distance ``||weights - center||`` in ``norm`` (float)."""
    deviation = ops.convert_to_tensor(weights) - (0.0 if center is None else ops.cast(
        center, ops.convert_to_tensor(weights).dtype))
    if norm == "mars":
        axes = tuple(range(len(deviation.shape) - 1)) if axes is None else tuple(axes)
        return float(ops.max(ops.sum(ops.abs(deviation), axis=axes)))
    return float(ops.sqrt(ops.sum(ops.square(deviation))))


def _check_radius(path, radius):
    radius = float(radius)
    if not radius > 0:
        raise ValueError(f"projection radius of {path!r} is {radius}: a radius must be > 0 "
                         "(math.inf leaves the variable free).")
    return radius


def _check_projection(projection):
    if projection is None:
        return {"norm": "mars", "balls": {}}
    norm = projection.get("norm", "mars")
    if norm not in NORMS:
        raise ValueError(f"projection norm {norm!r}; expected one of {NORMS}.")
    balls = {}
    for path, ball in dict(projection.get("balls", {})).items():
        center = ball.get("center", "start")
        if center not in ("start", "zero"):
            raise ValueError(f"projection ball of {path!r}: center must be 'start' or 'zero', "
                             f"got {center!r}.")
        balls[str(path)] = {"radius": _check_radius(path, ball["radius"]),
                            "axes": [int(a) for a in ball.get("axes", [])] or None,
                            "center": center}
    return {"norm": norm, "balls": balls}


class _Anchor:
    """The centres ``W0`` by path, held outside the optimizer's variable tracking (they are
    not optimizer state, and ``optimizer.variables`` must not list them)."""

    def __init__(self, centers=None, starting_point=None):
        self.centers = dict(centers or {})
        self.starting_point = starting_point  # keeps the copies alive with the optimizer


class _ProjectionMixin(PerVariableUpdate):
    """Projects each listed variable onto its ball after the base optimizer's update."""

    def __init__(self, *args, projection=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.projection = _check_projection(projection)
        self._anchor = _Anchor()
        self._variable_balls = []

    def bind(self, starting_point):
        """Sets the centres ``W0`` of the "start" balls: a :class:`StartingPoint` or
        ``{path: array or variable}``; returns the optimizer."""
        references = (starting_point.references if isinstance(starting_point, StartingPoint)
                      else dict(starting_point))
        missing = [p for p, b in self.projection["balls"].items()
                   if b["center"] == "start" and p not in references]
        if missing:
            raise ValueError(f"the starting point has no W0 for {len(missing)} projected "
                             f"variable(s), e.g. {missing[:3]}.")
        self._anchor = _Anchor({p: references[p] for p, b in self.projection["balls"].items()
                                if b["center"] == "start"}, starting_point)
        return self

    def build(self, variables):
        super().build(variables)
        balls = self.projection["balls"]
        paths = {v.path for v in variables}
        if balls and not paths & set(balls):
            raise ValueError("projection: none of the projected paths is a trainable variable "
                             f"of the model, e.g. {sorted(balls)[:3]} vs {sorted(paths)[:3]}. "
                             "Build the optimizer with with_mars_pgm(optimizer, model, ...).")
        unbound = [p for p in paths & set(balls)
                   if balls[p]["center"] == "start" and p not in self._anchor.centers]
        if unbound:
            raise ValueError(f"this projected optimizer is not bound to a starting point (no W0 "
                             f"for {sorted(unbound)[:3]}), e.g. it was rebuilt from its config. "
                             "Call optimizer.bind(starting_point) before training.")
        self._variable_balls = [balls.get(v.path) and (balls[v.path], v.path)
                                for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        result = super().update_step(gradient, variable, learning_rate)
        entry = self._variable_balls[self._get_variable_index(variable)]
        if entry:
            ball, path = entry
            center = self._anchor.centers.get(path) if ball["center"] == "start" else None
            variable.assign(project(variable, center, ball["radius"], self.projection["norm"],
                                    ball["axes"]))
        return result

    def get_config(self):
        config = super().get_config()
        config["projection"] = {"norm": self.projection["norm"],
                                "balls": {p: dict(b) for p, b in
                                          self.projection["balls"].items()}}
        return config


def projected_class(base: type[keras.optimizers.Optimizer]) -> type[keras.optimizers.Optimizer]:
    """The optimizer class ``MARSPGM<Base>``: ``base`` plus the ``projection`` argument
    (``{"norm": ..., "balls": {path: {"radius", "axes", "center"}}}``). Registered as
    serialisable (package ``tftransfer``)."""
    return wrapped_class(_ProjectionMixin, base, "MARSPGM", "a projection")


for _base in (keras.optimizers.SGD, keras.optimizers.Adam, keras.optimizers.AdamW,
              keras.optimizers.RMSprop):
    projected_class(_base)  # registered up front so saved optimizers deserialise


def balls(model: keras.Model, gamma: float = DEFAULT_GAMMA,
          new_layers: str | keras.Layer | Sequence[str | keras.Layer] = (),
          gamma_new: float = math.inf) -> dict[str, dict[str, Any]]:
    """``{path: ball}`` for ``model``'s kernels: radius ``gamma`` around the starting point
    for the inherited layers, ``gamma_new`` around zero for ``new_layers`` (none when inf)."""
    gamma = _check_radius("inherited layers", gamma)
    gamma_new = _check_radius("new layers", gamma_new)
    if isinstance(new_layers, (str, keras.layers.Layer)):
        new_layers = [new_layers]
    layers = penalty.all_layers(model)
    new_ids = {id(layer) for layer in penalty.resolve_new_layers(model, new_layers, layers)}
    table = {}
    for layer in layers:
        radius, center = (gamma_new, "zero") if id(layer) in new_ids else (gamma, "start")
        if math.isinf(radius):
            continue
        for variable, axes in penalty.kernel_variables(layer):
            table[variable.path] = {"radius": radius, "axes": list(axes), "center": center}
    return table


def with_mars_pgm(optimizer: keras.optimizers.Optimizer, model: keras.Model,
                  gamma: float = DEFAULT_GAMMA,
                  new_layers: str | keras.Layer | Sequence[str | keras.Layer] = (),
                  gamma_new: float = math.inf, norm: str = "mars",
                  starting_point: StartingPoint | Mapping[str, Any] | None = None
                  ) -> keras.optimizers.Optimizer:
    """A fresh optimizer of ``optimizer``'s class and config that projects ``model``'s
    kernels after every update (see the module docstring), bound to ``starting_point``
    (default: the model's penalty starting point when it covers the kernels, else a new
    frozen copy of the current weights)."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError("with_mars_pgm expects a keras.optimizers.Optimizer instance, got "
                        f"{optimizer!r}.")
    if getattr(optimizer, "built", False):
        raise ValueError("with_mars_pgm: the optimizer has already been used; pass a fresh one.")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}.")
    table = balls(model, gamma, new_layers, gamma_new)
    anchored = [v for layer in penalty.all_layers(model)
                for v, _ in penalty.kernel_variables(layer)
                if table.get(v.path, {}).get("center") == "start"]
    if starting_point is None:
        existing = penalty.starting_point(model)
        if existing is not None and existing.covers(anchored):
            starting_point = existing
        else:
            with penalty.scope(model):
                starting_point = StartingPoint(anchored, name="mars_pgm_starting_point")
    config = dict(optimizer.get_config(), projection={"norm": norm, "balls": table})
    logging.info("%s: %d kernels projected (%d around W0, radius %g; new layers: %g).",
                 SPECS[norm].name, len(table), len(anchored), gamma, gamma_new)
    return projected_class(type(optimizer)).from_config(config).bind(starting_point)
