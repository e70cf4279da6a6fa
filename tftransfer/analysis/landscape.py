"""Loss landscape slices along filter-normalised random directions (the visualisation of
H. Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets", used by Liu et al. 2019,
"Towards Understanding the Transferability of Deep Representations", Figures 3, 5, 10, 12, 13).

Around the model's current weights w (load the starting point or the solution first):

    1-D:  L(w + a d1)           for a in alphas
    2-D:  L(w + a d1 + b d2)    for a in alphas, b in betas

Between two weight sets (the linear path of Goodfellow et al. 2015), e.g. the starting
point w0 and the fine-tuned solution w1:

    path: L((1 - t) w0 + t w1)  for t in ts (every weight, batch-norm statistics included)

``d`` is Gaussian, then *filter-normalised*: for every filter (the slice ``[..., o]`` of a
kernel along its last axis, i.e. one output channel of an HWIO convolution or one output
unit of a dense kernel) ``d[..., o] <- d[..., o] / ||d[..., o]|| * ||w[..., o]||``. One-
dimensional variables (biases, batch-norm gamma/beta) get a zero direction by default,
as in Li et al. L is the mean cross-entropy (the models output logits) in inference mode;
accuracy is reported too. The weights are restored afterwards, even on error.
"""
import itertools
from typing import Any, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tftransfer.batching import labelled_batches
from tftransfer.variables import select_variables


def filter_normalized_direction(variables: Sequence[keras.Variable], seed: int = 0,
                                ignore_1d: bool = True) -> list[np.ndarray]:
    """A random direction (list of arrays) filter-normalised to ``variables``."""
    rng = np.random.default_rng(seed)
    direction = []
    for v in variables:
        w = np.asarray(v.numpy(), np.float64)
        d = rng.standard_normal(w.shape)
        if w.ndim <= 1:
            d = np.zeros_like(w) if ignore_1d else d * np.linalg.norm(w) / np.linalg.norm(d)
        else:
            axes = tuple(range(w.ndim - 1))
            d_norm = np.sqrt(np.sum(d * d, axis=axes, keepdims=True))
            w_norm = np.sqrt(np.sum(w * w, axis=axes, keepdims=True))
            d = d / np.maximum(d_norm, 1e-12) * w_norm
        direction.append(d.astype(v.dtype))
    return direction


class _Evaluator:
    """Mean cross-entropy and accuracy of a model on fixed data, compiled once."""

    def __init__(self, model, data, batch_size):
        self.model = model
        self.data = [(x, y) for x, y in labelled_batches(data, batch_size)]
        if not self.data:
            raise ValueError("the data yielded no examples.")
        self._step = tf.function(self._sums, reduce_retracing=True)

    def _sums(self, x, y):
        logits = self.model(x, training=False)
        y = tf.cast(tf.reshape(y, [-1]), tf.int64)
        loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        correct = tf.cast(tf.argmax(logits, -1) == y, tf.float64)
        return tf.reduce_sum(tf.cast(loss, tf.float64)), tf.reduce_sum(correct)

    def __call__(self):
        loss = correct = 0.0
        count = 0
        for x, y in self.data:
            l, c = self._step(x, y)
            loss, correct, count = loss + float(l), correct + float(c), count + int(x.shape[0])
        return loss / count, correct / count


def _scan(model, data, points, directions, paths, batch_size, progress):
    variables = select_variables(model, paths) if paths else list(model.trainable_variables)
    base = [v.numpy().copy() for v in variables]
    dirs = [filter_normalized_direction(variables, seed=s) for s in directions]
    evaluate = _Evaluator(model, data, batch_size)
    bar = keras.utils.Progbar(len(points), unit_name="point") if progress else None
    rows = []
    try:
        for i, coords in enumerate(points):
            for v, w0, *ds in zip(variables, base, *dirs):
                v.assign(w0 + sum(c * d for c, d in zip(coords, ds)))
            rows.append((*coords, *evaluate()))
            if bar is not None:
                bar.update(i + 1)
    finally:
        for v, w0 in zip(variables, base):
            v.assign(w0)
    return rows


def slice_1d(model: keras.Model, data: Any, alphas: Sequence[float] = np.linspace(-1, 1, 21),
             paths: Sequence[str] | None = None, seed: int = 0, batch_size: int = 256,
             progress: bool = False) -> pd.DataFrame:
    """Table (alpha, loss, accuracy) of ``L(w + alpha d)``; ``paths`` restricts the
    perturbed variables (e.g. one layer, Liu et al. 2019, Figures 12-13)."""
    rows = _scan(model, data, [(float(a),) for a in alphas], [seed], paths, batch_size,
                 progress)
    return pd.DataFrame(rows, columns=["alpha", "loss", "accuracy"])


def slice_2d(model: keras.Model, data: Any, alphas: Sequence[float] = np.linspace(-1, 1, 11),
             betas: Sequence[float] = np.linspace(-1, 1, 11),
             paths: Sequence[str] | None = None, seed: int = 0, batch_size: int = 256,
             progress: bool = False) -> pd.DataFrame:
    """Table (alpha, beta, loss, accuracy) of ``L(w + alpha d1 + beta d2)``."""
    points = [(float(a), float(b)) for a, b in itertools.product(alphas, betas)]
    rows = _scan(model, data, points, [seed, seed + 1], paths, batch_size, progress)
    return pd.DataFrame(rows, columns=["alpha", "beta", "loss", "accuracy"])


def interpolation(model: keras.Model, start: Sequence[np.ndarray], end: Sequence[np.ndarray],
                  data: Any, ts: Sequence[float] = np.linspace(0, 1, 11),
                  batch_size: int = 256) -> pd.DataFrame:
    """Table (t, loss, accuracy) of ``L((1 - t) start + t end)``; ``start`` and ``end`` are
    lists of arrays in the order of ``model.get_weights()``. The weights are restored
    afterwards, even on error."""
    if len(start) != len(end) or any(np.shape(a) != np.shape(b) for a, b in zip(start, end)):
        raise ValueError("start and end must be weight lists of the same model "
                         "(model.get_weights()).")
    saved = model.get_weights()
    if len(saved) != len(start):
        raise ValueError(f"the model has {len(saved)} weight arrays, start has {len(start)}.")
    evaluate = _Evaluator(model, data, batch_size)
    rows = []
    try:
        for t in ts:
            model.set_weights([(1.0 - t) * np.asarray(a) + t * np.asarray(b)
                               for a, b in zip(start, end)])
            rows.append((float(t), *evaluate()))
    finally:
        model.set_weights(saved)
    return pd.DataFrame(rows, columns=["t", "loss", "accuracy"])
