"""Distribution of the diagonal Fisher per variable (the numbers behind Li et al. 2018,
Figure 5; drawn by :func:`tftransfer.analysis.plots.plot_fisher`)."""
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def kernel_paths(fisher: Mapping[str, Any]) -> list[str]:
    """The variable paths that are kernels (``.../kernel``), in the dict's order."""
    return [p for p in fisher if p.endswith("kernel")]


def fisher_summary(fisher: Mapping[str, Any], paths: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variable: path, size, non_positive (entries <= 0), mean and the
    quantiles ``q00 q05 q25 q50 q75 q95 q100`` of its Fisher entries (float64)."""
    paths = list(paths or kernel_paths(fisher))
    unknown = [p for p in paths if p not in fisher]
    if unknown:
        raise ValueError(f"paths {unknown} are not in the Fisher file; it has {list(fisher)}.")
    rows = []
    for p in paths:
        values = np.asarray(fisher[p], np.float64).ravel()
        qs = np.quantile(values, QUANTILES)
        rows.append([p, values.size, int(np.sum(values <= 0)), values.mean(), *qs])
    columns = ["path", "size", "non_positive", "mean"] + [f"q{int(q * 100):02d}" for q in QUANTILES]
    return pd.DataFrame(rows, columns=columns)
