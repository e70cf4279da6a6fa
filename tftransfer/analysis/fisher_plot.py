"""Distribution of the diagonal Fisher per variable, log-scale boxplots (paper Figure 5)."""
import numpy as np
import pandas as pd

from tftransfer.analysis._io import new_figure, save_figure, write_csv

_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def kernel_paths(fisher):
    """The variable paths that are kernels (``.../kernel``), in the dict's order."""
    return [p for p in fisher if p.endswith("kernel")]


def fisher_summary(fisher, paths=None):
    """One row per variable: path, size, zeros, mean and quantiles of its Fisher entries."""
    paths = list(paths or kernel_paths(fisher))
    unknown = [p for p in paths if p not in fisher]
    if unknown:
        raise ValueError(f"paths {unknown} are not in the Fisher file; it has {list(fisher)}.")
    rows = []
    for p in paths:
        values = np.asarray(fisher[p], np.float64).ravel()
        qs = np.quantile(values, _QUANTILES)
        rows.append([p, values.size, int(np.sum(values <= 0)), values.mean(), *qs])
    columns = ["path", "size", "non_positive", "mean"] + [f"q{int(q * 100):02d}" for q in _QUANTILES]
    return pd.DataFrame(rows, columns=columns)


def plot_fisher(fisher, png_path, csv_path=None, paths=None,
                title="Diagonal Fisher information per layer"):
    """Log-scale boxplots of the positive Fisher entries of each variable (PNG, CSV)."""
    summary = fisher_summary(fisher, paths)
    data = []
    for p in summary["path"]:
        values = np.asarray(fisher[p], np.float64).ravel()
        data.append(values[values > 0] if np.any(values > 0) else np.array([np.nan]))
    fig, ax = new_figure(max(6.0, 0.45 * len(data)), 4.5)
    ax.boxplot(data, showfliers=False)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(data) + 1))
    ax.set_xticklabels(summary["path"], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("F_j (log scale)")
    ax.set_title(title)
    if csv_path:
        write_csv(summary, csv_path)
    save_figure(fig, png_path)
    return summary
