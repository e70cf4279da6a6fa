"""WiSE-FT: weight-space ensembling of the starting point and the fine-tuned model.

Wortsman, Ilharco, Kim, Li, Kornblith, Roelofs, Gontijo-Lopes, Hajishirzi, Farhadi, Namkoong
& Schmidt, "Robust fine-tuning of zero-shot models", CVPR 2022. After fine-tuning, every
weight is interpolated between ``theta_0`` (the starting point with its head: the zero-shot
head there, the linear-probe head here, see :mod:`tftransfer.methods.lp_ft`) and
``theta_1`` (the fine-tuned weights)::

    theta(a) = (1 - a) * theta_0 + a * theta_1,     a in [0, 1]  (a = 0.5 without tuning)

and the model is evaluated at each ``a`` of a grid. All the model's float weights are
interpolated, batch-norm moving statistics included (they are part of the network's
state); a non-float weight takes ``theta_0``'s value at ``a = 0`` and ``theta_1``'s
otherwise. The endpoints are exact: ``theta(0)`` is ``theta_0`` and ``theta(1)`` is
``theta_1`` bit for bit (copied, not computed); in between the mix is computed in float64
and cast to each weight's dtype.

How a driver uses it (a procedure: phase functions around ``fit``)::

    lp_ft.linear_probe(tm.model, train)                # theta_0: starting point + LP head
    theta_0 = snapshot(tm.model)
    tm.model.fit(...)                                  # fine-tuning
    theta_1 = snapshot(tm.model)
    scores = evaluate_grid(tm.model, theta_0, theta_1, alphas=(0, 0.25, 0.5, 0.75, 1),
                           evaluate=lambda m: m.evaluate(test, return_dict=True))

``evaluate_grid`` leaves the model at ``theta_1``. Keras-only (``get_weights`` /
``set_weights`` by variable path): backend-neutral.
"""
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np

from tftransfer.methods.registry import MethodSpec, register

DEFAULT_ALPHA = 0.5
DEFAULT_GRID = tuple(i / 10 for i in range(11))

SPEC = register(MethodSpec(
    name="wise_ft", kind="procedure",
    paper="Wortsman et al., CVPR 2022 (Robust fine-tuning of zero-shot models)",
    hyper_parameters={"alpha": DEFAULT_ALPHA},
    formula="theta(a) = (1 - a) theta_0 + a theta_1, theta_0 = starting point + linear-probe "
            "head, evaluated over a grid of a"))


def snapshot(model: keras.Model) -> dict[str, np.ndarray]:
    """``{variable path: NumPy copy}`` of every weight of ``model`` (trainable or not)."""
    return {v.path: np.array(keras.ops.convert_to_numpy(v), copy=True) for v in model.weights}


def _check_alpha(alpha):
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"WiSE-FT mixing coefficient must be in [0, 1], got {alpha}.")
    return alpha


def interpolate(theta_0: Mapping[str, np.ndarray], theta_1: Mapping[str, np.ndarray],
                alpha: float) -> dict[str, np.ndarray]:
    """``{path: (1 - alpha) * theta_0 + alpha * theta_1}`` (exact copies at 0 and 1)."""
    alpha = _check_alpha(alpha)
    if set(theta_0) != set(theta_1):
        raise ValueError("theta_0 and theta_1 hold different variables: only in theta_0 "
                         f"{sorted(set(theta_0) - set(theta_1))[:3]}, only in theta_1 "
                         f"{sorted(set(theta_1) - set(theta_0))[:3]}.")
    mixed = {}
    for path, start in theta_0.items():
        start, end = np.asarray(start), np.asarray(theta_1[path])
        if start.shape != end.shape:
            raise ValueError(f"{path}: theta_0 has shape {start.shape}, theta_1 {end.shape}.")
        if alpha == 0.0:
            mixed[path] = start.copy()
        elif alpha == 1.0 or not np.issubdtype(end.dtype, np.floating):
            mixed[path] = end.copy()
        else:
            value = (1.0 - alpha) * start.astype(np.float64) + alpha * end.astype(np.float64)
            mixed[path] = value.astype(end.dtype)
    return mixed


def assign(model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Sets every weight of ``model`` from ``weights`` (``{path: array}``, all paths)."""
    missing = [v.path for v in model.weights if v.path not in weights]
    if missing:
        raise ValueError(f"no value for {len(missing)} weight(s) of {model.name!r}, e.g. "
                         f"{missing[:3]}; snapshot the same model.")
    for v in model.weights:
        v.assign(weights[v.path])


def evaluate_grid(model: keras.Model, theta_0: Mapping[str, np.ndarray],
                  theta_1: Mapping[str, np.ndarray], alphas: Sequence[float] = DEFAULT_GRID,
                  evaluate: Callable[[keras.Model], Any] | None = None
                  ) -> list[tuple[float, Any]]:
    """``[(a, evaluate(model at theta(a)))]`` for each ``a`` of ``alphas``; the model is
    left at ``theta_1``. ``evaluate``: a function of the model (e.g. its ``evaluate`` on
    the test set); ``None`` returns the weights themselves."""
    results = []
    try:
        for alpha in alphas:
            weights = interpolate(theta_0, theta_1, alpha)
            assign(model, weights)
            results.append((float(alpha), weights if evaluate is None else evaluate(model)))
    finally:
        assign(model, theta_1)
    return results
