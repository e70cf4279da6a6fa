"""Callbacks of the driver's ``model.fit``: periodic checkpoints and progress.

:class:`Progress` logs, every ``--log_every`` steps, one line ``step, loss, penalty,
accuracy, learning rate, images/s, time left`` and the same values as TensorBoard scalars
and rows of ``train_log.csv``, with the deviation ``||W - W0||_F / sqrt(n)`` of a few
kernels (:func:`tftransfer.variables.deviation`). ``loss`` (cross-entropy plus
penalty, as minimised) and ``accuracy`` are means over the steps since the previous line,
recovered exactly from Keras' running means: ``(k m_k - j m_j) / (k - j)``. The learning
rate is the optimizer's, read just before the logged update. With ``--log_every=0``,
:class:`FinalProgress` writes one such row (and scalars) when training ends, without any
per-batch hook: every run has its ``train_log.csv`` and TensorBoard events.

Divergence: a loss that is not finite, or (before a checkpoint is written) a weight that is
not finite, raises :class:`Diverged` at the next log line or checkpoint, whichever comes
first, and at the end of training; nothing is saved after it, so the newest checkpoint is
the last good one.
"""
import csv
import importlib.util
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer import fused_penalty
from tftransfer.extras import install_hint
from tftransfer.variables import deviation

LOG_COLUMNS = ["step", "loss", "penalty", "accuracy", "learning_rate", "images_per_s"]


def _tensorboard_installed():
    """tf.summary.scalar needs the tensorboard package; without it only the CSV is written."""
    if importlib.util.find_spec("tensorboard") is not None:
        return True
    logging.info(f"tensorboard is not installed ({install_hint('driver')}): no TensorBoard "
                 "scalars, train_log.csv has the same values")
    return False


class Diverged(RuntimeError):
    """Training stopped on a non-finite loss or weight at ``step`` (``reason`` says which)."""

    def __init__(self, step, reason):
        super().__init__(f"training diverged at step {step}: {reason}")
        self.step, self.reason = step, reason


def _running_loss(logs):
    return float((logs or {}).get("loss", 0.0))


def divergence(model, logs):
    """Why training has diverged (the running loss or a weight is not finite), or None."""
    loss = _running_loss(logs)
    if not np.isfinite(loss):
        return f"the loss is {loss}"
    for variable in model.trainable_variables:
        if not bool(keras.ops.convert_to_numpy(keras.ops.all(keras.ops.isfinite(variable)))):
            return f"{variable.path} is not finite"
    return None


class FinalCheckpoint(keras.callbacks.Callback):
    """Saves when training ends. Defines no per-batch hook, so Keras keeps dispatching the
    steps asynchronously (a per-batch callback makes every step wait for its logs)."""

    def __init__(self, checkpointer, start_step, verbose=True):
        super().__init__()
        self.checkpointer, self.verbose = checkpointer, verbose
        self.step, self.last_saved = start_step, None

    def _save(self, logs):
        if self.step is None:
            self.step = int(self.checkpointer.step.numpy())
        reason = divergence(self.model, logs)
        if reason:
            raise Diverged(self.step, reason)
        path = self.checkpointer.save()
        self.last_saved = self.step
        if self.verbose and self.checkpointer.chief:
            logging.info(f"checkpoint: saved step {self.step} ({path})")

    def on_train_end(self, logs=None):
        if self.last_saved is None or self.last_saved != self.step:
            self._save(logs)


class PeriodicCheckpoint(FinalCheckpoint):
    """Also saves every ``every`` global steps, counted from ``start_step`` (reading the
    optimizer's counter would wait for each step)."""

    def __init__(self, checkpointer, every, start_step, verbose=True):
        super().__init__(checkpointer, start_step, verbose)
        self.every = every

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            self._save(logs)


class _Logging(keras.callbacks.Callback):
    """``train_log.csv`` and the TensorBoard scalars of :class:`Progress` and
    :class:`FinalProgress`: the files, the penalty's value, one row. Defines no per-batch
    hook."""

    def __init__(self, config, start_step, deviation_variables, reference, csv_path,
                 tensorboard_dir, write, verbose=True):
        super().__init__()
        self.config, self.start_step = config, start_step
        self.variables, self.reference = deviation_variables, reference
        self.csv_path, self.write, self.verbose = csv_path, write, verbose
        self.tensorboard_dir, self.writer = tensorboard_dir, None
        if write and _tensorboard_installed():
            self.writer = tf.summary.create_file_writer(tensorboard_dir)
        self.columns = LOG_COLUMNS + [f"deviation:{v.path}" for v in self.variables]

    def on_train_begin(self, logs=None):
        self._batches = 0
        self._last = (0, 0.0, 0.0, time.time())
        if self.write:
            self._truncate_log()

    def _truncate_log(self):
        """Keeps the rows up to the resumed step (a crash may have logged further)."""
        rows = []
        if os.path.exists(self.csv_path):
            with open(self.csv_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.start_step]
        with open(self.csv_path, "w", newline="") as f:
            out = csv.DictWriter(f, self.columns)
            out.writeheader()
            out.writerows(rows)

    def _penalty(self):
        penalty = fused_penalty.penalty_value(self.model)
        if penalty is None:
            penalty = float(sum(float(l) for l in self.model.losses)) if self.model.losses else 0.0
        return penalty

    def _row(self, step, loss, accuracy, rate, learning_rate):
        """The logged values at ``step`` (deviations read now)."""
        row = {"step": step, "loss": loss, "penalty": self._penalty(), "accuracy": accuracy,
               "learning_rate": learning_rate, "images_per_s": rate}
        for path, value in deviation(self.variables, self.reference).items():
            row[f"deviation:{path}"] = value
        return row

    def _write_row(self, row):
        if self.write:
            with open(self.csv_path, "a", newline="") as f:
                csv.DictWriter(f, self.columns).writerow(row)
        if self.writer is not None:
            with self.writer.as_default(step=row["step"]):
                for name, value in row.items():
                    if name != "step":
                        tf.summary.scalar(name.replace(":", "/"), value)
            self.writer.flush()


class Progress(_Logging):
    """Log lines, TensorBoard scalars and ``train_log.csv`` every ``--log_every`` steps and
    at the last one (module docstring)."""

    def _is_log_step(self, step):
        return (step % self.config.runtime.log_every == 0
                or step == self.config.optim.train_steps)

    def on_train_batch_begin(self, batch, logs=None):
        if self._is_log_step(self.start_step + self._batches + 1):
            # The optimizer's rate now (iterations = step - 1) is the one of this update.
            self._rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        step = self.start_step + self._batches
        if not self._is_log_step(step):
            return
        logs = logs or {}
        k = self._batches
        j, loss_j, acc_j, then = self._last
        loss_k, acc_k = float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan))
        now = time.time()
        loss = (k * loss_k - j * loss_j) / (k - j)
        accuracy = (k * acc_k - j * acc_j) / (k - j)
        self._last = (k, loss_k, acc_k, now)
        rate = (k - j) * self.config.optim.batch_size / max(now - then, 1e-9)
        row = self._row(step, loss, accuracy, rate, self._rate)
        if self.verbose:
            steps, batch = self.config.optim.train_steps, self.config.optim.batch_size
            left = (steps - step) * batch / max(rate, 1e-9)
            logging.info(f"step {step}/{steps}  loss {loss:.4f}  penalty {row['penalty']:.4f}  "
                         f"accuracy {accuracy:.3f}  lr {row['learning_rate']:.3g}  "
                         f"{rate:.0f} images/s  {left / 60:.1f} min left")
        self._write_row(row)
        if not np.isfinite(loss_k):
            raise Diverged(step, f"the loss is {loss_k}")


class FinalProgress(_Logging):
    """``--log_every=0``: one ``train_log.csv`` row and one set of TensorBoard scalars when
    training ends, at step ``--train_steps``: ``loss`` and ``accuracy`` are the means over
    the steps this process ran (Keras' running means at the end), ``images_per_s`` over
    them, ``learning_rate`` that of the last update (``schedule(step - 1)``), the penalty
    and deviations read then. No per-batch hook and no log line: Keras keeps dispatching
    the steps asynchronously, and nothing of the training changes. ``learning_rate``: the
    run's schedule (:func:`tftransfer.training.model.learning_rate_schedule`)."""

    def __init__(self, *args, learning_rate=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.learning_rate = learning_rate

    def _last_rate(self, step):
        rate = self.learning_rate
        if callable(rate):
            rate = rate(max(step - 1, 0))
        return np.nan if rate is None else float(keras.ops.convert_to_numpy(rate))

    def on_train_end(self, logs=None):
        logs = logs or {}
        step = self.config.optim.train_steps
        seconds = time.time() - self._last[3]
        steps = step - self.start_step
        loss = float(logs.get("loss", np.nan))  # the multi-worker loop passes no logs
        row = self._row(step, loss, float(logs.get("accuracy", np.nan)),
                        steps * self.config.optim.batch_size / max(seconds, 1e-9),
                        self._last_rate(step))
        self._write_row(row)
        if self.writer is not None:
            self.writer.close()  # nothing follows: release the events file
        if "loss" in logs and not np.isfinite(loss):
            raise Diverged(step, f"the loss is {loss}")
