"""The report's own figures, each a function of a table returning a matplotlib Figure
(written by :func:`experiments.cpu_study.report.write_report`), drawn in the project's one
style (:mod:`tftransfer.analysis.style`: a method's colour, marker and label are the same
in every figure; legends sit below the axes, never on the data). Error bars are the sample
std over seeds (ddof=1, :func:`experiments.cpu_study.report.common.stats`)."""
import math

import numpy as np

from tftransfer.analysis import style
from tftransfer.analysis.plots import new_figure
from experiments.cpu_study.report.common import select, stats


def bars(runs, splits, methods):
    """Mean test accuracy ± std, one panel per split, one horizontal bar per method in the
    method's colour (labels on the shared y axis: no legend to cover the bars)."""
    fig, axes = new_figure(3.4 * len(splits) + 2.6, 0.42 * len(methods) + 1.6,
                           panels=len(splits), sharey=True)
    y = np.arange(len(methods))[::-1]
    finite = []
    for ax, split in zip(axes, splits):
        for yi, method in zip(y, methods):
            m, s, _ = stats(select(runs, split=split, method=method))
            if math.isnan(m):
                continue
            finite.append(m)
            face = style.colour(method)
            ax.barh(yi, m, 0.75, color=face, edgecolor="#333333", linewidth=0.5)
            style.halo(ax.errorbar(m, yi, xerr=s, color="#222222", capsize=3, lw=1.2))
        ax.set_title(f"{split} split", fontsize=10)
        ax.set_xlabel("test accuracy (%)")
        ax.grid(axis="x", color="#DDDDDD", lw=0.6)
        ax.set_axisbelow(True)
    if finite:
        for ax in axes:
            ax.set_xlim(max(0.0, min(finite) - 5), min(100.0, max(finite) + 3))
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([style.label(m) for m in methods], fontsize=8)
    axes[0].set_ylabel("method")
    for ax in axes[1:]:
        ax.tick_params(axis="y", labelleft=False)
    fig.suptitle("Target test accuracy per method (mean ± std over seeds)", fontsize=11)
    return fig


def _axis_text(value, panel):
    """``value`` when a string, else ``value[panel]`` (a label per panel)."""
    return value.get(panel, "") if isinstance(value, dict) else value


def lines(frame, x, y, group, title, xlabel, ylabel, logx=False, panels=None, integer_x=False,
          dodge=0.0, legend_title="method", logy=False, layered=False):
    """``y`` against ``x``, one line per ``group`` value in that method's style (error bars
    from column ``y_std`` if present), one panel per value of column ``panel`` in
    ``panels``; ``xlabel`` / ``ylabel``: one string or ``{panel: string}``. ``logx``: log
    axis ticked at the data's values; ``integer_x``: ticks at the integer x values only
    (a count such as k); ``dodge``: each line shifted by this much times its index around
    the true x, so that lines on the same points stay visible. One legend below the
    panels; the lines (and the legend) follow the order of
    :func:`tftransfer.analysis.style.methods`; ``logy``: log-scale y; ``layered``: the
    first lines drawn wider, with bigger markers, so that a line under an identical later
    one still shows (for a continuous x that ``dodge`` would distort)."""
    panels = panels or [None]
    fig, axes = new_figure(max(5.6, 4.3 * len(panels)), 4.2, panels=len(panels))
    for ax, panel in zip(axes, panels):
        sub = frame if panel is None else frame[frame["panel"] == panel]
        groups = sorted(sub.groupby(group, sort=False), key=lambda item: style.order(item[0]))
        for j, (name, g) in enumerate(groups):
            g = g.sort_values(x)
            shift = (j - (len(groups) - 1) / 2) * dodge
            xs = g[x] * (10 ** shift) if logx else g[x] + shift
            yerr = g[y + "_std"] if y + "_std" in g else None
            rank = (len(groups) - 1 - j) / max(1, len(groups) - 1) if layered else 0.0
            ax.errorbar(xs, g[y], yerr=yerr, ms=4 + 3 * rank, capsize=2, lw=1.2 + 1.8 * rank,
                        **style.line_style(name))
        if logx:
            ax.set_xscale("log")
            style.log_ticks(ax.xaxis, sub[x])
        if logy:
            ax.set_yscale("log")
            style.log_axis(ax.yaxis, sub[y])
        if integer_x:
            style.integer_ticks(ax.xaxis, sub[x])
        ax.set_xlabel(_axis_text(xlabel, panel))
        ax.set_ylabel(_axis_text(ylabel, panel))
        ax.set_title(style.title(title, panel), fontsize=9)
        ax.grid(color="#EEEEEE", lw=0.6)
    style.legend_below(fig, axes, title=legend_title)
    return fig


def heatmap(frame, column="val_accuracy"):
    """``column`` (pooled validation accuracy, in %, or cross-entropy) over the alpha x beta
    grid, values printed in the cells. Refuses (ValueError) a grid whose cells are all
    equal: it says nothing a sentence cannot (the report writes that sentence instead, see
    :mod:`.figure1`)."""
    accuracy = column == "val_accuracy"
    name = "validation accuracy (%)" if accuracy else "validation cross-entropy"
    grid = frame.pivot_table(index="beta", columns="alpha", values=column)
    values = (100 if accuracy else 1) * grid.to_numpy()
    if style.is_constant(values):
        raise ValueError(f"every cell of the alpha x beta grid has the same {name} "
                         f"({values.flat[0]:.3g}): a heatmap of it carries no "
                         "information; state it in the text instead of drawing it.")
    fig, ax = new_figure(5.8, 4.0)
    image = ax.imshow(values, cmap="cividis" if accuracy else "cividis_r", aspect="auto",
                      origin="lower")
    ax.set_xticks(range(len(grid.columns)))
    ax.set_xticklabels([f"{a:g}" for a in grid.columns])
    ax.set_yticks(range(len(grid.index)))
    ax.set_yticklabels([f"{b:g}" for b in grid.index])
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.1f}" if accuracy else f"{value:.3f}", ha="center",
                    va="center", fontsize=8,
                    color=style.contrast(image.cmap(image.norm(value))))
    ax.set_xlabel("alpha (strength on inherited weights)")
    ax.set_ylabel("beta (strength on the new head)")
    ax.set_title(f"L2-SP pooled {name} over alpha x beta", fontsize=10)
    fig.colorbar(image, ax=ax, label=name)
    return fig


def fisher_boxes(fisher):
    """Boxes of the stored Fisher quantiles (25-75%, whiskers 5-95%, line: median) per layer,
    one colour per split's source network."""
    splits = list(dict.fromkeys(fisher["split"]))
    paths = list(dict.fromkeys(fisher["path"]))
    fig, ax = new_figure(max(7.0, 0.5 * len(fisher)), 5.0)
    stats_list, positions, faces = [], [], []
    width = 0.8 / len(splits)
    for j, split in enumerate(splits):
        for i, p in enumerate(paths):
            row = fisher[(fisher["split"] == split) & (fisher["path"] == p)]
            if row.empty:
                continue
            r = row.iloc[0]
            stats_list.append(dict(med=r["q50"], q1=r["q25"], q3=r["q75"], whislo=r["q05"],
                                   whishi=r["q95"], label=""))
            positions.append(i + (j - (len(splits) - 1) / 2) * width)
            faces.append(style.split_colour(split))
    boxes = ax.bxp(stats_list, positions=positions, widths=width * 0.8, showfliers=False,
                   patch_artist=True, manage_ticks=False)
    style.style_boxes(boxes, faces)
    for split in splits:
        ax.plot([], [], color=style.split_colour(split), lw=8, label=f"source of {split}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(paths)))
    ax.set_xticklabels([p.replace("/kernel", "") for p in paths], rotation=30, ha="right",
                       fontsize=8)
    ax.set_xlabel("kernel (input side to output side)")
    ax.set_ylabel("F_j (squared gradient of log-likelihood)")
    ax.set_title("Diagonal Fisher of the source networks per layer (Figure 5 analog; "
                 "box 25-75%, whiskers 5-95%, line: median)", fontsize=10)
    style.legend_below(fig, ax, title="split")
    return fig


def selection_curves(cv):
    """The cross-validation curves of the main selection: pooled validation accuracy (top
    row) and cross-entropy (bottom row) against alpha (log axis), one column per split, one
    line per method in its style, the chosen alpha ringed."""
    from matplotlib.figure import Figure

    splits = list(dict.fromkeys(cv["split"]))
    fig = Figure(figsize=(3.6 * len(splits) + 1.0, 6.0), layout="constrained")
    grid = fig.subplots(2, len(splits), squeeze=False, sharex=True)
    alphas = sorted(set(cv["alpha"]))
    for col, split in enumerate(splits):
        sub = cv[cv["split"] == split]
        for method, group in sub.groupby("method", sort=False):
            group = group.sort_values("alpha")
            for row, (column, scale) in enumerate((("val_accuracy", 100.0),
                                                   ("val_cross_entropy", 1.0))):
                ax = grid[row][col]
                ax.plot(group["alpha"], scale * group[column], **style.line_style(method))
                chosen = group[group["chosen_by_accuracy"].astype(bool)]
                ax.plot(chosen["alpha"], scale * chosen[column], "o", ms=11, mfc="none",
                        mec=style.colour(method), mew=1.2)
        grid[0][col].set_title(f"{split} split", fontsize=10)
        for row, name in enumerate(("pooled validation accuracy (%)",
                                    "pooled validation cross-entropy")):
            ax = grid[row][col]
            ax.set_xscale("log")
            style.log_axis(ax.xaxis, alphas)
            ax.grid(color="#DDDDDD", lw=0.6)
            if col == 0:
                ax.set_ylabel(name)
        grid[1][col].set_xlabel("alpha")
    style.legend_below(fig, list(grid[0]))
    fig.suptitle("Cross-validation of alpha (circle: the choice)", fontsize=11)
    return fig
