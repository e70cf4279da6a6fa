"""Layer-wise R^2 of fine-tuned activations regressed on pretrained ones (Li et al. 2018,
Figure 4; drawn by :func:`tftransfer.analysis.plots.plot_r2`).

For every unit u of a layer (a feature map of a convolution: every spatial position of every
example is an observation), the fine-tuned activation y is regressed on the pretrained
activation x of the same unit by least squares with an intercept, y ~ a x + b:

    R^2_u = 1 - SS_res / SS_tot = cov(x, y)^2 / (var(x) var(y))

Conventions for degenerate units: y constant -> R^2 = 1 (perfectly predicted); x constant
and y not -> R^2 = 0. Moments are accumulated in float64 over batches (Chan et al.'s merge),
so the dataset never has to fit in memory.
"""
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from tftransfer.batching import batches


def default_layers(model: keras.Model) -> list[str]:
    """The first ``*_relu`` layer (the stem) and every ``*_out`` layer (block outputs).

    This matches the package's small ResNet and keras.applications ResNets; pass explicit
    names for other architectures.
    """
    names = [layer.name for layer in model.layers]
    relus = [n for n in names if n.endswith("_relu")]
    chosen = relus[:1] + [n for n in names if n.endswith("_out")]
    if not chosen:
        raise ValueError(f"no '*_relu'/'*_out' layers in {model.name!r}; pass layer names.")
    return chosen


def activation_model(model: keras.Model, layers: Sequence[str]) -> keras.Model:
    """A model mapping ``model``'s inputs to the outputs of ``layers`` (names)."""
    names = {layer.name for layer in model.layers}
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"layers {unknown} are not in model {model.name!r}; its layers: "
                         f"{[layer.name for layer in model.layers]}.")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, [model.get_layer(n).output for n in layers])


class _Moments:
    """Running means and centred (co)moments of paired per-unit observations."""

    def __init__(self):
        self.n = 0

    def update(self, x, y):
        x, y = x.astype(np.float64), y.astype(np.float64)
        nb = x.shape[0]
        mx, my = x.mean(0), y.mean(0)
        dx, dy = x - mx, y - my
        cxx, cyy, cxy = (dx * dx).sum(0), (dy * dy).sum(0), (dx * dy).sum(0)
        if self.n == 0:
            self.n, self.mx, self.my = nb, mx, my
            self.cxx, self.cyy, self.cxy = cxx, cyy, cxy
            return
        n = self.n + nb
        ex, ey = mx - self.mx, my - self.my
        w = self.n * nb / n
        self.cxx = self.cxx + cxx + ex * ex * w
        self.cyy = self.cyy + cyy + ey * ey * w
        self.cxy = self.cxy + cxy + ex * ey * w
        self.mx, self.my, self.n = self.mx + ex * nb / n, self.my + ey * nb / n, n

    def r2(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = self.cxy ** 2 / (self.cxx * self.cyy)
        r2 = np.where(self.cxx == 0, 0.0, r2)
        return np.clip(np.where(self.cyy == 0, 1.0, r2), 0.0, 1.0)


def layer_r2(pretrained: keras.Model, finetuned: keras.Model, data: Any,
             layers: Sequence[str] | None = None,
             batch_size: int = 128) -> dict[str, np.ndarray]:
    """Returns ``{layer: R^2 per unit}`` of ``finetuned`` on ``pretrained`` activations.

    Args:
      pretrained, finetuned: functional models sharing the layer names in ``layers``.
      data: inputs (see :func:`tftransfer.batching.batches`); labels are ignored.
      layers: layer names; default :func:`default_layers` of ``pretrained``.
    """
    layers = list(layers or default_layers(pretrained))
    source, target = activation_model(pretrained, layers), activation_model(finetuned, layers)
    moments = [_Moments() for _ in layers]
    for x, _ in batches(data, batch_size):
        xs, ys = source(x, training=False), target(x, training=False)
        for m, a, b in zip(moments, xs, ys):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape:
                raise ValueError(f"activation shapes differ: {a.shape} vs {b.shape}; the two "
                                 "models must share the backbone architecture.")
            m.update(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]))
    if moments and moments[0].n == 0:
        raise ValueError("the data yielded no examples.")
    return {name: m.r2() for name, m in zip(layers, moments)}


def r2_frame(results: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """Long table (model, layer, unit, r2) from ``{model_name: layer_r2(...)}``."""
    rows = [(name, layer, unit, float(v)) for name, per_layer in results.items()
            for layer, values in per_layer.items() for unit, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["model", "layer", "unit", "r2"])
