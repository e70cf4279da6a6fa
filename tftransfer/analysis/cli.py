"""What the analysis command-line tools (``tools/*.py``) share: reading their inputs
(``.keras`` models, ``.npz`` arrays, ``NAME=PATH`` items), writing their outputs (CSV
tables and PNG figures, atomically) and the plain SGD fit two of them run their callbacks
under."""
import os
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import keras
import numpy as np
from absl import logging

from tftransfer.io_utils import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def load_model(path: str) -> keras.Model:
    """Loads a ``.keras`` model file (uncompiled), with a clear error when it is missing."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} not found; save one with "
                                "model.save('name.keras').")
    import tftransfer  # noqa: F401  (registers the package's serializable objects)
    return keras.saving.load_model(path, compile=False)


def load_arrays(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Loads ``(x, y)`` from an .npz file holding arrays ``x`` and ``y`` (``y`` optional)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path!r} not found; write one with "
                                "numpy.savez(path, x=images, y=labels).")
    with np.load(path, allow_pickle=False) as data:
        if "x" not in data.files:
            raise ValueError(f"{path!r} has arrays {data.files}; it needs 'x' (inputs) and "
                             "usually 'y' (integer labels).")
        return data["x"], (data["y"] if "y" in data.files else None)


def parse_named(items: Iterable[str], what: str = "PATH") -> dict[str, str]:
    """Parses command-line ``NAME=PATH`` items into an ordered ``{name: path}``."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"expected NAME={what}, got {item!r}.")
        out[name] = path
    return out


def write_csv(frame: "pd.DataFrame", path: str) -> str:
    """Writes a pandas DataFrame to ``path`` atomically (no index); returns ``path``."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def write_png(fig: "Figure", path: str, dpi: int = 120) -> str:
    """Lays out and saves a matplotlib Figure as PNG to ``path`` atomically; returns it.
    A figure with its own layout engine (the constrained layout of
    :func:`tftransfer.analysis.plots.new_figure`) keeps it; others get ``tight_layout``."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def write_outputs(out_dir: str, stem: str, frame: "pd.DataFrame", figure: "Figure") -> list[str]:
    """Writes ``<out_dir>/<stem>.png`` (the Figure) and ``<stem>.csv`` (the DataFrame), each
    atomically, and logs them; returns ``[png, csv]``."""
    outputs = [write_png(figure, os.path.join(out_dir, stem + ".png")),
               write_csv(frame, os.path.join(out_dir, stem + ".csv"))]
    logging.info("wrote %s and %s", *outputs)
    return outputs


def fit_sgd(model: keras.Model, x: Any, y: Any, epochs: int, learning_rate: float,
            batch_size: int, callbacks: Sequence[keras.callbacks.Callback] = (),
            seed: int = 0) -> keras.callbacks.History:
    """Fits ``model`` (logits) with SGD, momentum 0.9, mean cross-entropy; returns history."""
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, callbacks=list(callbacks),
                     verbose=2)
