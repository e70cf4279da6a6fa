"""Gradient statistics during training (papers/000 Figures 6, 7, 11).

On a fixed probe batch (x, y), with the model in inference mode and L the mean
cross-entropy, at the current weights w:

- gradient norm per variable: ``||dL/dW||_2``;
- loss along the gradient direction: ``L(w - eta * g)`` for step sizes ``eta``
  (``g = dL/dw``); its spread ``max_eta L - min_eta L`` is the loss variation, small when
  the landscape is smooth (a Lipschitz probe, Santurkar et al. 2018).

:class:`GradientStatistics` records both every ``every_n_batches`` training batches, with the
step sizes taken as multiples of the optimizer's current learning rate.
"""
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tftransfer.analysis._io import new_figure, save_figure, write_csv
from tftransfer.analysis.deviation import select_variables


def _loss(model, x, y):
    logits = model(x, training=False)
    y = tf.cast(tf.reshape(y, [-1]), tf.int64)
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits,
                                                                       from_logits=True))


def gradients(model, x, y, variables):
    """``dL/dW`` for ``variables`` on the probe batch."""
    with tf.GradientTape() as tape:
        loss = _loss(model, x, y)
    return tape.gradient(loss, variables)


def gradient_norms(model, x, y, paths=None):
    """``{path: ||dL/dW||_2}`` for the selected variables (default every kernel)."""
    variables = select_variables(model, paths)
    grads = gradients(model, x, y, variables)
    return {v.path: float(tf.norm(g)) for v, g in zip(variables, grads)}


def loss_along_gradient(model, x, y, step_sizes):
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


def plot_gradient_norms(frame, png_path, csv_path=None):
    """Boxplots, per variable, of the gradient norms recorded over training (PNG, CSV)."""
    paths = list(dict.fromkeys(frame["path"]))
    fig, ax = new_figure(max(6.0, 0.45 * len(paths)), 4.5)
    ax.boxplot([frame[frame["path"] == p]["grad_norm"].to_numpy() for p in paths],
               showfliers=True)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(paths) + 1))
    ax.set_xticklabels(paths, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("||dL/dW|| over training (log)")
    ax.set_title("Gradient norm per layer during training")
    if csv_path:
        write_csv(frame, csv_path)
    return save_figure(fig, png_path)


def plot_loss_variation(frame, png_path, csv_path=None):
    """Band between min and max of ``L(w - eta g)`` over eta, against step (PNG, CSV)."""
    spread = frame.groupby("step")["loss"].agg(["min", "max"]).reset_index()
    fig, ax = new_figure(6.5, 4.0)
    ax.fill_between(spread["step"], spread["min"], spread["max"], alpha=0.4)
    ax.plot(spread["step"], spread["max"] - spread["min"], label="variation (max - min)")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss along the gradient")
    ax.set_title("Loss variation along the gradient direction")
    ax.legend()
    if csv_path:
        write_csv(frame, csv_path)
    return save_figure(fig, png_path)


class GradientStatistics(keras.callbacks.Callback):
    """Records gradient norms and the loss along the gradient on a probe batch.

    Args:
      probe: ``(x, y)`` arrays of a fixed batch.
      output_prefix: writes ``<prefix>_grad_norms.{csv,png}`` and
        ``<prefix>_loss_variation.{csv,png}`` (CSVs at each epoch end, all when training ends).
      every_n_batches: recording period in training batches (also recorded at step 0).
      step_scales: step sizes as multiples of the optimizer's current learning rate.
      paths: variables whose gradient norms are recorded; default every kernel.
    """

    def __init__(self, probe, output_prefix=None, every_n_batches=10,
                 step_scales=(0.25, 0.5, 1.0, 2.0, 4.0), paths=None):
        super().__init__()
        if every_n_batches < 1:
            raise ValueError(f"every_n_batches must be >= 1, got {every_n_batches}.")
        self.x, self.y = (tf.convert_to_tensor(a) for a in probe)
        self.output_prefix, self.every_n_batches = output_prefix, every_n_batches
        self.step_scales, self.paths = tuple(step_scales), paths
        self.norm_rows, self.loss_rows = [], []

    def on_train_begin(self, logs=None):
        self._step, self.norm_rows, self.loss_rows = 0, [], []
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every_n_batches == 0:
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        self._write(plots=False)

    def on_train_end(self, logs=None):
        self._write(plots=True)

    def frames(self):
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

    def _write(self, plots):
        if not self.output_prefix:
            return
        for frame, kind, plot in zip(self.frames(), ("grad_norms", "loss_variation"),
                                     (plot_gradient_norms, plot_loss_variation)):
            csv = f"{self.output_prefix}_{kind}.csv"
            if plots:
                plot(frame, f"{self.output_prefix}_{kind}.png", csv)
            else:
                write_csv(frame, csv)
