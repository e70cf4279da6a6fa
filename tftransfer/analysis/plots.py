"""The figures of the analyses: one ``plot_*`` per figure, each taking the table (or arrays)
an analysis function returned and returning a matplotlib ``Figure``; nothing is written
here (save with :func:`tftransfer.analysis.cli.write_png`).

Figures are built on their own Agg canvas (``matplotlib.figure.Figure``), never through
pyplot, so they are safe in worker processes and leave no global state.
"""
import numpy as np
from matplotlib.figure import Figure


def new_figure(width=7.0, height=4.5, panels=None):
    """A pyplot-free Figure and its Axes: one Axes, or a list of ``panels`` side by side."""
    fig = Figure(figsize=(width, height))
    if panels is None:
        return fig, fig.add_subplot(1, 1, 1)
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def plot_r2(frame, title="R^2 of fine-tuned vs pretrained activations"):
    """Boxplots of R^2 per layer, one colour per model (Li et al. 2018, Figure 4); ``frame``
    is :func:`tftransfer.analysis.r2.r2_frame`'s table (model, layer, unit, r2)."""
    models = list(dict.fromkeys(frame["model"]))
    layers = list(dict.fromkeys(frame["layer"]))
    fig, ax = new_figure(max(6.0, 0.9 * len(layers) * len(models)), 4.5)
    width = 0.8 / len(models)
    for j, name in enumerate(models):
        sub = frame[frame["model"] == name]
        data = [sub[sub["layer"] == layer]["r2"].to_numpy() for layer in layers]
        positions = np.arange(len(layers)) + (j - (len(models) - 1) / 2) * width
        box = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                         showfliers=False)
        colour = f"C{j}"
        for patch in box["boxes"]:
            patch.set_facecolor(colour)
            patch.set_alpha(0.6)
        ax.plot([], [], color=colour, lw=8, alpha=0.6, label=name)
    ax.set_xticks(np.arange(len(layers)))
    ax.set_xticklabels(layers, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("R^2 per unit")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend()
    return fig


def plot_fisher(values, paths, title="Diagonal Fisher information per layer"):
    """Log-scale boxplots of the positive Fisher entries of each of ``paths`` (Li et al.
    2018, Figure 5); ``values`` maps a path to its Fisher array."""
    data = []
    for p in paths:
        v = np.asarray(values[p], np.float64).ravel()
        data.append(v[v > 0] if np.any(v > 0) else np.array([np.nan]))
    fig, ax = new_figure(max(6.0, 0.45 * len(data)), 4.5)
    ax.boxplot(data, showfliers=False)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(data) + 1))
    ax.set_xticklabels(list(paths), rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("F_j (log scale)")
    ax.set_title(title)
    return fig


def plot_deviation(frame):
    """One line per variable: ``||W - W0||_F / sqrt(n)`` against training step (Li et al.
    2018, Figure 2); ``frame`` has columns step, path, deviation."""
    fig, ax = new_figure(7.5, 4.5)
    for path, sub in frame.groupby("path", sort=False):
        ax.plot(sub["step"], sub["deviation"], label=path)
    ax.set_xlabel("training step")
    ax.set_ylabel("||W - W0||_F / sqrt(n)")
    ax.set_title("Deviation from the starting point")
    ax.legend(fontsize=6, ncol=2)
    return fig


def plot_drops(frame):
    """Bar chart of the ``drop`` column per ``method`` row (Li et al. 2018, Table 5)."""
    fig, ax = new_figure(max(4.0, 1.2 * len(frame)), 4.0)
    ax.bar(frame["method"], frame["drop"], color=[f"C{i}" for i in range(len(frame))])
    ax.set_ylabel("source accuracy drop (points)")
    ax.set_title("Source task with the source head put back")
    return fig


def plot_spectrum(frame, top=None):
    """Normalised singular values (log scale) against index, one line per checkpoint;
    ``frame`` is :func:`tftransfer.analysis.spectrum.spectrum_frame`'s table."""
    fig, ax = new_figure(6.0, 4.0)
    for name, sub in frame.groupby("checkpoint", sort=False):
        sub = sub if top is None else sub[sub["index"] < top]
        ax.plot(sub["index"] + 1, sub["normalized"], label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma_i / sigma_1")
    ax.set_title("Spectrum of penultimate features")
    ax.legend(fontsize=7)
    return fig


def plot_transfer(frame):
    """Probe and fine-tune accuracy against checkpoint (rows of ``frame``: checkpoint,
    probe_accuracy, finetune_accuracy)."""
    fig, ax = new_figure(6.0, 4.0)
    x = np.arange(len(frame))
    ax.plot(x, 100 * frame["probe_accuracy"], marker="o", label="linear probe (frozen)")
    ax.plot(x, 100 * frame["finetune_accuracy"], marker="s", label="fine-tune")
    ax.set_xticks(x)
    ax.set_xticklabels(frame["checkpoint"], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title("Transfer vs source checkpoint")
    ax.legend()
    return fig


def plot_weight_map(frame, title="t-SNE of layer weights"):
    """Scatter plot of :func:`tftransfer.analysis.weight_map.weight_map`, coloured by label."""
    fig, ax = new_figure(5.5, 5.0)
    for i, (label, sub) in enumerate(frame.groupby("label", sort=False)):
        ax.scatter(sub["x"], sub["y"], s=25, color=f"C{i % 10}", label=str(label))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7)
    return fig


def plot_slice_1d(frames):
    """Loss against alpha; ``frames`` is one :func:`~tftransfer.analysis.landscape.slice_1d`
    table or ``{label: table}``."""
    frames = frames if isinstance(frames, dict) else {"model": frames}
    fig, ax = new_figure(6.0, 4.0)
    for label, frame in frames.items():
        ax.plot(frame["alpha"], frame["loss"], marker="o", ms=3, label=label)
    ax.set_xlabel("alpha (filter-normalised direction)")
    ax.set_ylabel("cross-entropy")
    ax.set_title("1-D loss landscape")
    ax.legend()
    return fig


def plot_slice_2d(frame, levels=20):
    """Contour plot of a :func:`~tftransfer.analysis.landscape.slice_2d` table."""
    alphas, betas = np.unique(frame["alpha"]), np.unique(frame["beta"])
    grid = frame.pivot(index="beta", columns="alpha", values="loss").loc[betas, alphas]
    fig, ax = new_figure(5.5, 4.5)
    contour = ax.contour(alphas, betas, grid.to_numpy(), levels=levels)
    ax.clabel(contour, fontsize=6)
    ax.plot([0], [0], "k+")
    ax.set_xlabel("alpha (direction 1)")
    ax.set_ylabel("beta (direction 2)")
    ax.set_title("2-D loss landscape")
    return fig


def plot_gradient_norms(frame):
    """Boxplots, per variable, of the gradient norms recorded over training (step, path,
    grad_norm)."""
    paths = list(dict.fromkeys(frame["path"]))
    fig, ax = new_figure(max(6.0, 0.45 * len(paths)), 4.5)
    ax.boxplot([frame[frame["path"] == p]["grad_norm"].to_numpy() for p in paths],
               showfliers=True)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(paths) + 1))
    ax.set_xticklabels(paths, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("||dL/dW|| over training (log)")
    ax.set_title("Gradient norm per layer during training")
    return fig


def plot_loss_variation(frame):
    """Band between min and max of ``L(w - eta g)`` over eta, against step (step, eta,
    loss)."""
    spread = frame.groupby("step")["loss"].agg(["min", "max"]).reset_index()
    fig, ax = new_figure(6.5, 4.0)
    ax.fill_between(spread["step"], spread["min"], spread["max"], alpha=0.4)
    ax.plot(spread["step"], spread["max"] - spread["min"], label="variation (max - min)")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss along the gradient")
    ax.set_title("Loss variation along the gradient direction")
    ax.legend()
    return fig
