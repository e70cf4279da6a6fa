"""Shared plumbing of the analyses: batches in, CSV and PNG out (atomically), tool inputs."""
import os

import keras
import numpy as np
from matplotlib.figure import Figure

from tftransfer.io_utils import atomic_path


def write_csv(frame, path):
    """Writes a pandas DataFrame to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def new_figure(width=7.0, height=4.5, panels=None):
    """A matplotlib Figure independent of pyplot (Agg canvas) and its Axes: one Axes, or a
    list of ``panels`` side by side when ``panels`` is given."""
    fig = Figure(figsize=(width, height))
    if panels is None:
        return fig, fig.add_subplot(1, 1, 1)
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def save_figure(fig, path, dpi=120):
    """Saves ``fig`` as PNG to ``path`` atomically; returns ``path``."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def load_model(path):
    """Loads a ``.keras`` model file (uncompiled), with a clear error when it is missing."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} not found; save one with "
                                "model.save('name.keras').")
    import tftransfer  # noqa: F401  (registers the package's serializable objects)
    return keras.saving.load_model(path, compile=False)


def load_arrays(path):
    """Loads ``(x, y)`` from an .npz file holding arrays ``x`` and ``y`` (``y`` optional)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path!r} not found; write one with "
                                "numpy.savez(path, x=images, y=labels).")
    with np.load(path, allow_pickle=False) as data:
        if "x" not in data.files:
            raise ValueError(f"{path!r} has arrays {data.files}; it needs 'x' (inputs) and "
                             "usually 'y' (integer labels).")
        return data["x"], (data["y"] if "y" in data.files else None)


def parse_named(items):
    """Parses command-line ``NAME=PATH`` items into an ordered ``{name: path}``."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"expected NAME=PATH, got {item!r}.")
        out[name] = path
    return out


def train(model, x, y, epochs, learning_rate, batch_size, callbacks=(), seed=0):
    """Fits ``model`` (logits) with SGD, momentum 0.9, mean cross-entropy; returns history."""
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, callbacks=list(callbacks),
                     verbose=2)
