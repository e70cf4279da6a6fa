"""Weight deviation from the starting point, ``||W - W0||_F / sqrt(n)`` per layer
(Li et al. 2018, Figure 2), recorded during training by a Keras callback; the formula and
the snapshot are the core's (:mod:`tftransfer.variables`). Plot the table with
:func:`tftransfer.analysis.plots.plot_deviation`."""
from typing import Any, Sequence

import keras
import pandas as pd

from tftransfer.variables import StartingPoint, deviation, select_variables


class WeightDeviation(keras.callbacks.Callback):
    """Records the deviation of chosen variables from their values when training starts.

    Recorded at step 0, every ``every_n_batches`` batches (if given) and at every epoch end;
    ``frame()`` returns the table (columns step, epoch, path, deviation).

    Args:
      paths: variable paths; default every kernel (``.../kernel``).
      every_n_batches: also record inside epochs.
    """

    def __init__(self, paths: Sequence[str] | None = None,
                 every_n_batches: int | None = None) -> None:
        super().__init__()
        if every_n_batches is not None and every_n_batches < 1:
            raise ValueError(f"every_n_batches must be >= 1, got {every_n_batches}.")
        self.paths, self.every_n_batches = paths, every_n_batches
        self.rows = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._variables = select_variables(self.model, self.paths, kernels_only=True)
        self._reference = StartingPoint(self._variables, name="deviation_reference")
        self._step, self._epoch, self.rows = 0, 0, []
        self._record()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._step += 1
        if self.every_n_batches and self._step % self.every_n_batches == 0:
            self._record()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not (self.every_n_batches and self._step % self.every_n_batches == 0):
            self._record()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", "epoch", "path", "deviation"])

    def _record(self):
        for path, value in deviation(self._variables, self._reference).items():
            self.rows.append((self._step, self._epoch, path, value))
