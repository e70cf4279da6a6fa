"""The figure of predicted masks: one row per test scene, columns input, true mask, then each
method's predicted mask (one colour per class, background black; method labels from
:mod:`tftransfer.analysis.style`), from the examples file of
:mod:`experiments.scene_study.examples` only."""
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tftransfer.analysis import style

BACKGROUND = (0.0, 0.0, 0.0)
# Class colours: the colour-blind-safe cycle of tftransfer.analysis.style without its black
# (the background's).
CLASS_COLOURS = tuple(c for c in (style.categorical(i) for i in range(18)) if c != "#000000")


def palette(num_classes):
    """RGB colours of mask values 0..num_classes-1: black, then :data:`CLASS_COLOURS`."""
    return [BACKGROUND] + [mcolors.to_rgb(CLASS_COLOURS[i % len(CLASS_COLOURS)])
                           for i in range(num_classes - 1)]


def colourise(mask, num_classes):
    """float ``[H, W, 3]`` of an integer mask ``[H, W]`` (values 0..num_classes-1)."""
    return np.asarray(palette(num_classes))[np.asarray(mask, np.int64)]


def pixel_accuracy(truth, prediction):
    return float(np.mean(np.asarray(truth) == np.asarray(prediction)))


def masks(examples, methods, titles=None):
    """Figure of ``examples`` (``{target: {"images", "truth", "predictions": {method: masks},
    "class_names"}}``, :func:`experiments.scene_study.examples.load`) for ``methods``;
    ``titles``: ``{target: row label}``."""
    rows = [(t, i) for t, e in examples.items() for i in range(len(e["images"]))]
    cols = 2 + len(methods)
    fig = Figure(figsize=(1.7 * cols + 1.6, 1.7 * len(rows)))
    axes = np.asarray(fig.subplots(len(rows), cols, squeeze=False))
    first = {}
    for r, (target, i) in enumerate(rows):
        e = examples[target]
        k = len(e["class_names"]) + 1
        truth = e["truth"][i]
        panels = [("input", None), ("truth", truth)] + [
            (style.label(m), e["predictions"][m][i]) for m in methods]
        for c, (name, mask) in enumerate(panels):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if mask is None:
                ax.imshow(e["images"][i], cmap="gray", vmin=0, vmax=255)
                ax.set_ylabel(f"{(titles or {}).get(target, target)}\nscene {i}", fontsize=7)
            else:
                ax.imshow(colourise(mask, k), interpolation="nearest")
                if c > 1:
                    name = f"{name}\npixel acc. {100 * pixel_accuracy(truth, mask):.0f}%"
            ax.set_title(name, fontsize=7)
        if target not in first:
            first[target] = r
            handles = [Patch(color=colour, label=n) for colour, n in
                       zip(palette(k), ["background"] + list(e["class_names"]))]
            axes[r, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.05, 1.0),
                               fontsize=6, frameon=False)
    return fig
