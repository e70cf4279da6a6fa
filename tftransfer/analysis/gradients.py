"""Gradient statistics during training (Liu et al. 2019, "Towards Understanding the
Transferability of Deep Representations", Figures 6, 7 and 11).

On a fixed probe batch (x, y), with the model in inference mode and L the mean
cross-entropy, at the current weights w:

- gradient norm per variable: ``||dL/dW||_2``;
- loss along the gradient direction: ``L(w - eta * g)`` for step sizes ``eta``
  (``g = dL/dw``); its spread ``max_eta L - min_eta L`` is the loss variation, small when
  the landscape is smooth (a Lipschitz probe, Santurkar et al. 2018).

:class:`GradientStatistics` records both every ``every_n_batches`` training batches, with the
step sizes taken as multiples of the optimizer's current learning rate; the tables are drawn
by :func:`tftransfer.analysis.plots.plot_gradient_norms` and ``plot_loss_variation``.
"""
from typing import Any, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tftransfer.variables import select_variables


def _loss(model, x, y):
    logits = model(x, training=False)
    y = tf.cast(tf.reshape(y, [-1]), tf.int64)
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits,
                                                                       from_logits=True))


def gradients(model: keras.Model, x: Any, y: Any,
              variables: Sequence[keras.Variable]) -> list[tf.Tensor]:
    """``dL/dW`` for ``variables`` on the probe batch."""
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y)
    return tape.gradient(loss, variables)


def gradient_norms(model: keras.Model, x: Any, y: Any,
                   paths: Sequence[str] | None = None) -> dict[str, float]:
    """``{path: ||dL/dW||_2}`` for the selected variables (default every kernel)."""
    variables = select_variables(model, paths)
    grads = gradients(model, x, y, variables)
    return {v.path: float(tf.norm(g)) for v, g in zip(variables, grads)}


def loss_along_gradient(model: keras.Model, x: Any, y: Any,
                        step_sizes: Sequence[float]) -> np.ndarray:
    """``[L(w - eta g) for eta in step_sizes]`` over all trainable variables; w restored."""
    variables = list(model.trainable_variables)
    grads = gradients(model, x, y, variables)
    base = [v.numpy().copy() for v in variables]
    losses = []
    try:
        for eta in step_sizes:
            for v, w0, g in zip(variables, base, grads):
                v.assign(w0 - eta * g.numpy())
            losses.append(float(_loss(model, x, y)))
    finally:
        for v, w0 in zip(variables, base):
            v.assign(w0)
    return np.array(losses)


class GradientStatistics(keras.callbacks.Callback):
    """Records gradient norms and the loss along the gradient on a probe batch.

    Args:
      probe: ``(x, y)`` arrays of a fixed batch.
      every_n_batches: recording period in training batches (also recorded at step 0).
      step_scales: step sizes as multiples of the optimizer's current learning rate.
      paths: variables whose gradient norms are recorded; default every kernel.
    """

    def __init__(self, probe: tuple[Any, Any], every_n_batches: int = 10,
                 step_scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
                 paths: Sequence[str] | None = None) -> None:
        super().__init__()
        if every_n_batches < 1:
            raise ValueError(f"every_n_batches must be >= 1, got {every_n_batches}.")
        self.x, self.y = (tf.convert_to_tensor(a) for a in probe)
        self.every_n_batches = every_n_batches
        self.step_scales, self.paths = tuple(step_scales), paths
        self.norm_rows, self.loss_rows = [], []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._step, self.norm_rows, self.loss_rows = 0, [], []
        self._record()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._step += 1
        if self._step % self.every_n_batches == 0:
            self._record()

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(gradient-norm table, loss-along-gradient table)``."""
        return (pd.DataFrame(self.norm_rows, columns=["step", "path", "grad_norm"]),
                pd.DataFrame(self.loss_rows, columns=["step", "eta", "loss"]))

    def _record(self):
        for path, norm in gradient_norms(self.model, self.x, self.y, self.paths).items():
            self.norm_rows.append((self._step, path, norm))
        lr = float(np.asarray(self.model.optimizer.learning_rate))
        etas = [scale * lr for scale in self.step_scales]
        for eta, loss in zip(etas, loss_along_gradient(self.model, self.x, self.y, etas)):
            self.loss_rows.append((self._step, eta, loss))

