"""The figures of the analyses: one ``plot_*`` per figure, each taking the table (or arrays)
an analysis function returned and returning a matplotlib ``Figure``; nothing is written
here (save with :func:`tftransfer.analysis.cli.write_png`).

Figures are built on their own Agg canvas (``matplotlib.figure.Figure``), never through
pyplot, so they are safe in worker processes and leave no global state.
"""
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from tftransfer.analysis import style

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes


def new_figure(width: float = 7.0, height: float = 4.5, panels: int | None = None,
               sharey: bool = False) -> "tuple[Figure, Axes | list[Axes]]":
    """A pyplot-free Figure (constrained layout, so that :func:`style.legend_below` and
    long tick labels get their room) and its Axes: one Axes, or a list of ``panels`` side by
    side (sharing the y axis when ``sharey``)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    if panels is None:
        return fig, fig.add_subplot(1, 1, 1)
    axes = []
    for i in range(panels):
        axes.append(fig.add_subplot(1, panels, i + 1,
                                    sharey=axes[0] if sharey and axes else None))
    return fig, axes


def plot_r2(frame: "pd.DataFrame",
            title: str = "R^2 of fine-tuned vs pretrained activations") -> Figure:
    """Boxplots of R^2 per layer, one colour per model (Li et al. 2018, Figure 4); ``frame``
    is :func:`tftransfer.analysis.r2.r2_frame`'s table (model, layer, unit, r2). A model
    named after a method (``l2_sp``) takes that method's colour and label
    (:mod:`.style`)."""
    models = sorted(dict.fromkeys(frame["model"]), key=style.order)
    layers = list(dict.fromkeys(frame["layer"]))
    fig, ax = new_figure(max(6.0, 0.9 * len(layers) * len(models)), 4.8)
    width = 0.8 / len(models)
    for j, name in enumerate(models):
        sub = frame[frame["model"] == name]
        data = [sub[sub["layer"] == layer]["r2"].to_numpy() for layer in layers]
        positions = np.arange(len(layers)) + (j - (len(models) - 1) / 2) * width
        box = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                         showfliers=False, manage_ticks=False)
        style.style_boxes(box, [style.colour(name)] * len(data))
        ax.plot([], [], color=style.colour(name), lw=8, label=style.label(name))
    ax.set_xticks(np.arange(len(layers)))
    ax.set_xticklabels(layers, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("layer (input side to output side)")
    ax.set_ylabel("R^2 per unit (1 = same as at the start)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    style.legend_below(fig, ax, title="model (box 25-75%, whiskers 1.5 IQR, line: median)")
    return fig


def plot_fisher(values: Mapping[str, np.ndarray], paths: Sequence[str],
                title: str = "Diagonal Fisher information per layer") -> Figure:
    """Log-scale boxplots of the positive Fisher entries of each of ``paths`` (Li et al.
    2018, Figure 5); ``values`` maps a path to its Fisher array."""
    data = []
    for p in paths:
        v = np.asarray(values[p], np.float64).ravel()
        data.append(v[v > 0] if np.any(v > 0) else np.array([np.nan]))
    fig, ax = new_figure(max(6.0, 0.45 * len(data)), 4.8)
    box = ax.boxplot(data, showfliers=False, patch_artist=True)
    style.style_boxes(box, [style.categorical(0)] * len(data))
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(data) + 1))
    ax.set_xticklabels(list(paths), rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("variable")
    ax.set_ylabel("F_j (squared gradient of the log-likelihood, log scale)")
    ax.set_title(title)
    return fig


def plot_deviation(frame: "pd.DataFrame") -> Figure:
    """One line per variable: ``||W - W0||_F / sqrt(n)`` against training step (Li et al.
    2018, Figure 2); ``frame`` has columns step, path, deviation."""
    fig, ax = new_figure(7.5, 5.0)
    for i, (path, sub) in enumerate(frame.groupby("path", sort=False)):
        ax.plot(sub["step"], sub["deviation"], label=path, color=style.categorical(i),
                linestyle=("-", "--", ":", "-.")[(i // 18) % 4])
    ax.set_xlabel("training step (iterations)")
    ax.set_ylabel("||W - W0||_F / sqrt(n) (weight scale)")
    ax.set_title("Deviation from the starting point")
    style.legend_below(fig, ax, ncol=3, fontsize=7)
    return fig


def plot_drops(frame: "pd.DataFrame") -> Figure:
    """Bar chart of the ``drop`` column per ``method`` row (Li et al. 2018, Table 5), each bar
    in its method's colour (:mod:`.style`)."""
    fig, ax = new_figure(max(4.0, 1.2 * len(frame)), 4.0)
    names = list(frame["method"])
    x = np.arange(len(names))
    ax.bar(x, frame["drop"], color=[style.colour(m) for m in names], edgecolor="#333333")
    ax.set_xticks(x)
    ax.set_xticklabels([style.label(m) for m in names], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("method")
    ax.set_ylabel("source accuracy drop (points)")
    ax.set_title("Source task with the source head put back")
    return fig


def plot_spectrum(frame: "pd.DataFrame", top: int | None = None) -> Figure:
    """Normalised singular values (log scale) against index, one line per checkpoint;
    ``frame`` is :func:`tftransfer.analysis.spectrum.spectrum_frame`'s table."""
    fig, ax = new_figure(6.0, 4.5)
    for i, (name, sub) in enumerate(frame.groupby("checkpoint", sort=False)):
        sub = sub if top is None else sub[sub["index"] < top]
        ax.plot(sub["index"] + 1, sub["normalized"], label=str(name),
                color=style.categorical(i))
    ax.set_yscale("log")
    style.integer_ticks(ax.xaxis)
    ax.set_xlabel("singular value index (1 = largest)")
    ax.set_ylabel("sigma_i / sigma_1 (log scale)")
    ax.set_title("Spectrum of penultimate features")
    style.legend_below(fig, ax, title="checkpoint")
    return fig


def plot_transfer(frame: "pd.DataFrame") -> Figure:
    """Probe and fine-tune accuracy against checkpoint (rows of ``frame``: checkpoint,
    probe_accuracy, finetune_accuracy), in the colours of ``linear_probe`` and ``none``."""
    fig, ax = new_figure(6.0, 4.5)
    x = np.arange(len(frame))
    ax.plot(x, 100 * frame["probe_accuracy"], marker="o", color=style.colour("linear_probe"),
            label="linear probe (frozen)")
    ax.plot(x, 100 * frame["finetune_accuracy"], marker="s", color=style.colour("none"),
            label="fine-tune")
    ax.set_xticks(x)
    ax.set_xticklabels(frame["checkpoint"], rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("source checkpoint")
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title("Transfer vs source checkpoint")
    style.legend_below(fig, ax)
    return fig


def plot_weight_map(frame: "pd.DataFrame", title: str = "t-SNE of layer weights") -> Figure:
    """Scatter plot of :func:`tftransfer.analysis.weight_map.weight_map`, coloured by label."""
    fig, ax = new_figure(5.5, 5.5)
    for i, (label, sub) in enumerate(frame.groupby("label", sort=False)):
        ax.scatter(sub["x"], sub["y"], s=25, color=style.categorical(i), label=str(label))
    ax.set_title(title)
    ax.set_xlabel("t-SNE 1 (no unit)")
    ax.set_ylabel("t-SNE 2 (no unit)")
    ax.set_xticks([])
    ax.set_yticks([])
    style.legend_below(fig, ax, fontsize=7)
    return fig


def plot_slice_1d(frames: "pd.DataFrame | Mapping[str, pd.DataFrame]") -> Figure:
    """Loss against alpha; ``frames`` is one :func:`~tftransfer.analysis.landscape.slice_1d`
    table or ``{label: table}`` (a method name as label takes its colour)."""
    frames = frames if isinstance(frames, dict) else {"model": frames}
    fig, ax = new_figure(6.0, 4.5)
    for label, frame in frames.items():
        kw = style.line_style(label)
        ax.plot(frame["alpha"], frame["loss"], ms=3, **kw)
    ax.set_xlabel("step along a filter-normalised direction (0 = the model)")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title("1-D loss landscape")
    style.legend_below(fig, ax)
    return fig


def plot_slice_2d(frame: "pd.DataFrame", levels: int = 20) -> Figure:
    """Contour plot of a :func:`~tftransfer.analysis.landscape.slice_2d` table."""
    alphas, betas = np.unique(frame["alpha"]), np.unique(frame["beta"])
    grid = frame.pivot(index="beta", columns="alpha", values="loss").loc[betas, alphas]
    fig, ax = new_figure(5.5, 4.5)
    contour = ax.contour(alphas, betas, grid.to_numpy(), levels=levels, cmap="cividis")
    ax.clabel(contour, fontsize=6)
    ax.plot([0], [0], "k+")
    ax.set_xlabel("step along direction 1 (0 = the model)")
    ax.set_ylabel("step along direction 2 (0 = the model)")
    ax.set_title("2-D loss landscape (contours: cross-entropy)")
    return fig


def plot_gradient_norms(frame: "pd.DataFrame") -> Figure:
    """Boxplots, per variable, of the gradient norms recorded over training (step, path,
    grad_norm)."""
    paths = list(dict.fromkeys(frame["path"]))
    fig, ax = new_figure(max(6.0, 0.45 * len(paths)), 4.8)
    box = ax.boxplot([frame[frame["path"] == p]["grad_norm"].to_numpy() for p in paths],
                     showfliers=True, patch_artist=True)
    style.style_boxes(box, [style.categorical(0)] * len(paths))
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(paths) + 1))
    ax.set_xticklabels(paths, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("variable")
    ax.set_ylabel("||dL/dW|| over training (log scale)")
    ax.set_title("Gradient norm per layer during training")
    return fig


def plot_loss_variation(frame: "pd.DataFrame") -> Figure:
    """Band between min and max of ``L(w - eta g)`` over eta, against step (step, eta,
    loss)."""
    spread = frame.groupby("step")["loss"].agg(["min", "max"]).reset_index()
    fig, ax = new_figure(6.5, 4.5)
    ax.fill_between(spread["step"], spread["min"], spread["max"], alpha=0.4,
                    color=style.categorical(0), label="min to max over eta")
    ax.plot(spread["step"], spread["max"] - spread["min"], color=style.categorical(1),
            label="variation (max - min)")
    ax.set_xlabel("training step (iterations)")
    ax.set_ylabel("loss along the gradient (cross-entropy)")
    ax.set_title("Loss variation along the gradient direction")
    style.legend_below(fig, ax)
    return fig
