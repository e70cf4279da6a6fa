"""LP-FT: linear probe to convergence, then full fine-tuning from that head.

Kumar, Raghunathan, Jones, Ma & Liang, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution", ICLR 2022. Fine-tuning with a random head distorts the
pretrained features while the head is still bad; LP-FT first fits the head alone on the
frozen features (the linear probe: a logistic regression, run to convergence), then fine-tunes
every layer starting from that head. Phase 1 minimises over the head ``(W, b)`` only::

    (1/n) sum_i CE(y_i, W^T phi(x_i) + b) + l2/2 ||W||^2    (+ the head's own regularizers)

with ``phi`` the starting point's penultimate features in inference mode (batch norm with its
moving statistics, no dropout), as the paper's probe on fixed features. The features are
computed once (one pass over the data), then the head is trained on them with
``train_on_batch`` of a one-layer model that shares the head layer (one traced step, no
per-epoch set-up), until the epoch loss improves by less than ``tolerance`` for
``patience`` epochs (or ``epochs`` is reached). The backbone is never
touched. Phase 2 is the driver's ordinary fine-tuning run of the whole model, which now
starts from the probed head.

How a driver uses it (a procedure: a phase function before ``compile``/``fit``)::

    result = linear_probe(tm.model, (x, y), head="predictions", l2=1e-4)   # or a tf.data set
    tm.model.compile(...); tm.model.fit(...)                                # phase 2: FT

Keras-only for arrays; a ``tf.data.Dataset`` (any iterable of ``(x, y)`` batches) is read
by iterating it.
"""
import dataclasses
from typing import Any, List

import keras
import numpy as np

from tftransfer import regularizers
from tftransfer.methods.registry import MethodSpec, register

HEAD = "predictions"

SPEC = register(MethodSpec(
    name="lp_ft", kind="procedure",
    paper="Kumar et al., ICLR 2022 (Fine-Tuning can Distort Pretrained Features)",
    hyper_parameters={"probe_epochs": 500, "probe_learning_rate": 0.01, "probe_l2": 0.0},
    formula="phase 1: min_(W,b) mean CE(y, W^T phi0(x) + b) + l2/2 ||W||^2 on frozen features; "
            "phase 2: fine-tune all layers from that head"))


@dataclasses.dataclass
class ProbeResult:
    """What :func:`linear_probe` did: epochs run, the loss per epoch, the number of
    examples and the feature dimension."""
    epochs: int
    losses: List[float]
    examples: int
    feature_dim: int


def feature_model(model: keras.Model, head: str = HEAD) -> keras.Model:
    """``keras.Model``: inputs -> the input of layer ``head`` (the penultimate features)."""
    layer = model.get_layer(head)
    return keras.Model(model.inputs, layer.input, name=model.name + "_probe_features")


def features_and_labels(extractor: keras.Model, data: Any,
                        batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` as NumPy arrays: ``extractor`` in inference mode over
    ``data``, a tuple ``(x, y)`` of arrays or an iterable of ``(x, y[, weights])`` batches."""
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        feats = extractor.predict(x, batch_size=batch_size, verbose=0)
        return np.asarray(feats), np.asarray(y)
    feats, labels = [], []
    for batch in data:
        x, y = batch[0], batch[1]
        feats.append(keras.ops.convert_to_numpy(extractor(x, training=False)))
        labels.append(keras.ops.convert_to_numpy(y))
    if not feats:
        raise ValueError("linear_probe: the data yielded no batch.")
    return np.concatenate(feats), np.concatenate(labels)


class _L2(keras.layers.Layer):
    """Adds ``l2/2 * ||kernel||^2`` of a shared Dense layer to the probe's losses."""

    def __init__(self, dense, l2, **kwargs):
        super().__init__(**kwargs)
        self.dense, self.l2 = dense, l2

    def call(self, logits):
        if self.l2:
            self.add_loss(0.5 * self.l2 * keras.ops.sum(keras.ops.square(self.dense.kernel)))
        return logits


def linear_probe(model: keras.Model, data: Any, head: str = HEAD, epochs: int = 500,
                 learning_rate: float = 0.01, l2: float = 0.0, batch_size: int = 256,
                 optimizer: keras.optimizers.Optimizer | None = None,
                 tolerance: float = 1e-6, patience: int = 10, from_logits: bool = True,
                 seed: int = 0) -> ProbeResult:
    """Phase 1 of LP-FT: fits layer ``head`` (a ``Dense`` on the penultimate features) of
    ``model`` on the frozen features of ``data``; every other weight is left as it is.

    Args:
      model: the target model (its current weights: the starting point).
      data: ``(x, y)`` arrays (integer labels) or an iterable of ``(x, y)`` batches.
      head: name of the classifier layer.
      epochs: maximum passes over the features.
      learning_rate: of the default optimizer (Adam).
      l2: ``l2/2 ||W||^2`` on the head's kernel (the probe's regularisation).
      batch_size: batch of the feature pass and of the probe (``None``: full batch).
      optimizer: a fresh ``keras.optimizers.Optimizer`` to use instead of Adam.
      tolerance, patience: stop when the epoch loss improved by less than ``tolerance`` for
        ``patience`` epochs.
      from_logits: whether the head outputs logits (tftransfer's heads do).
      seed: of the order of the examples in each epoch (minibatches only).
    Returns a :class:`ProbeResult`.
    """
    l2 = regularizers.check_strength(l2, "l2")
    layer = model.get_layer(head)
    if not isinstance(layer, keras.layers.Dense):
        raise ValueError(f"linear_probe: layer {head!r} is a {type(layer).__name__}, not the "
                         "Dense classifier on the features.")
    feats, labels = features_and_labels(feature_model(model, head), data,
                                        batch_size or 256)
    inputs = keras.Input(feats.shape[1:], name="probe_features")
    probe = keras.Model(inputs, _L2(layer, l2, name="probe_l2")(layer(inputs)),
                        name=model.name + "_linear_probe")
    probe.compile(optimizer or keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
    count, size = len(feats), min(batch_size or len(feats), len(feats))
    order_rng = np.random.default_rng(seed)
    losses, best, stale = [], np.inf, 0
    for _ in range(int(epochs)):
        order = order_rng.permutation(count) if size < count else np.arange(count)
        total = 0.0
        for start in range(0, count, size):
            index = order[start:start + size]
            value = probe.train_on_batch(feats[index], labels[index])
            total += float(np.asarray(value).reshape(-1)[0]) * len(index)
        losses.append(total / count)
        if losses[-1] < best - tolerance:
            best, stale = losses[-1], 0
        else:
            stale += 1
            if stale >= patience:
                break
    return ProbeResult(len(losses), losses, count, int(feats.shape[-1]))
