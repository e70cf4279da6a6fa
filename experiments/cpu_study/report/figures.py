"""The report's own figures, each a function of a table returning a matplotlib Figure
(written by :func:`experiments.cpu_study.report.write_report`). Error bars are the sample
std over seeds (ddof=1, :func:`experiments.cpu_study.report.common.stats`)."""
import math

import numpy as np

from tftransfer.analysis.plots import new_figure
from experiments.cpu_study.report.common import label, select, stats


def bars(runs, splits, methods):
    """Mean test accuracy ± std per method, one bar colour per split."""
    fig, ax = new_figure(max(7.0, 1.1 * len(methods) * len(splits) / 2), 4.5)
    width = 0.8 / len(splits)
    for j, split in enumerate(splits):
        means, stds = [], []
        for method in methods:
            m, s, _ = stats(select(runs, split=split, method=method))
            means.append(m)
            stds.append(s)
        x = np.arange(len(methods)) + (j - (len(splits) - 1) / 2) * width
        ax.bar(x, means, width * 0.9, yerr=stds, capsize=2, label=split, color=f"C{j}")
    finite = [stats(select(runs, split=s, method=m))[0] for s in splits for m in methods]
    finite = [v for v in finite if not math.isnan(v)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 5), min(100.0, max(finite) + 3))
    ax.set_xticks(np.arange(len(methods)))
    ax.set_xticklabels([label(m) for m in methods], rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Target test accuracy per method and split (mean ± std over seeds)")
    ax.legend(title="split")
    return fig


def lines(frame, x, y, group, title, xlabel, ylabel, logx=False, panels=None):
    """``y`` against ``x``, one line per ``group`` value (error bars from column ``y_std`` if
    present), one panel per value of column ``panel`` in ``panels``."""
    panels = panels or [None]
    fig, axes = new_figure(4.2 * len(panels), 3.8, panels=len(panels))
    for ax, panel in zip(axes, panels):
        sub = frame if panel is None else frame[frame["panel"] == panel]
        for j, (name, g) in enumerate(sub.groupby(group, sort=False)):
            g = g.sort_values(x)
            ax.errorbar(g[x], g[y], yerr=g.get(y + "_std"), marker="o", ms=3, capsize=2,
                        label=label(name), color=f"C{j}")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title if panel is None else f"{title}: {panel}", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def heatmap(frame):
    """Validation accuracy (%) over the alpha x beta grid, values printed in the cells."""
    grid = frame.pivot_table(index="beta", columns="alpha", values="val_accuracy")
    fig, ax = new_figure(5.5, 3.8)
    image = ax.imshow(100 * grid.to_numpy(), cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(grid.columns)))
    ax.set_xticklabels([f"{a:g}" for a in grid.columns])
    ax.set_yticks(range(len(grid.index)))
    ax.set_yticklabels([f"{b:g}" for b in grid.index])
    for (i, j), value in np.ndenumerate(100 * grid.to_numpy()):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xlabel("alpha (inherited weights)")
    ax.set_ylabel("beta (new head)")
    ax.set_title("L2-SP validation accuracy (%) over alpha x beta")
    fig.colorbar(image, ax=ax)
    return fig


def fisher_boxes(fisher):
    """Boxes of the stored Fisher quantiles (25-75%, whiskers 5-95%) per layer and split."""
    splits = list(dict.fromkeys(fisher["split"]))
    fig, ax = new_figure(max(7.0, 0.5 * len(fisher)), 4.5)
    stats_list, positions = [], []
    paths = list(dict.fromkeys(fisher["path"]))
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
    boxes = ax.bxp(stats_list, positions=positions, widths=width * 0.8, showfliers=False,
                   patch_artist=True)
    per_split = len(stats_list) // max(1, len(splits))
    for k, patch in enumerate(boxes["boxes"]):
        patch.set_facecolor(f"C{k // max(1, per_split)}")
        patch.set_alpha(0.6)
    for j, split in enumerate(splits):
        ax.plot([], [], color=f"C{j}", lw=8, alpha=0.6, label=f"source of {split}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(paths)))
    ax.set_xticklabels([p.replace("/kernel", "") for p in paths], rotation=45, ha="right",
                       fontsize=7)
    ax.set_ylabel("F_j (log scale; box 25-75%, whiskers 5-95%)")
    ax.set_title("Diagonal Fisher of the source networks per layer (Figure 5 analog)")
    ax.legend(fontsize=7)
    return fig
