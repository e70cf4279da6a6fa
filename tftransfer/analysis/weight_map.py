"""2-D map of weight space: t-SNE of one layer's weights across runs (Liu et al. 2019,
"Towards Understanding the Transferability of Deep Representations", Figure 4).

Each point is one weight tensor (e.g. the same layer of several runs and/or several
snapshots of a run), flattened. scikit-learn is an optional extra, imported when used
(the ``sklearn`` extra). Drawn by :func:`tftransfer.analysis.plots.plot_weight_map`.
"""
from typing import Sequence

import numpy as np
import pandas as pd

from tftransfer.extras import install_hint


def embed(weights: Sequence[np.ndarray], perplexity: float = 5.0, seed: int = 0) -> np.ndarray:
    """t-SNE embedding [n, 2] of ``weights`` (a list of equally shaped arrays)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as err:
        raise ImportError(f"the weight-space map needs scikit-learn: "
                          f"{install_hint('sklearn')}") from err
    shapes = {np.shape(w) for w in weights}
    if len(shapes) != 1:
        raise ValueError(f"all weight tensors must have one shape; got {sorted(shapes)}.")
    if not 0 < perplexity < len(weights):
        raise ValueError(f"perplexity must be in (0, number of points = {len(weights)}); "
                         f"got {perplexity}. Lower it or add runs/snapshots.")
    matrix = np.stack([np.asarray(w, np.float64).ravel() for w in weights])
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(matrix)


def weight_map(labels: Sequence[str], weights: Sequence[np.ndarray], perplexity: float = 5.0,
               seed: int = 0) -> pd.DataFrame:
    """Table (label, point, x, y): ``labels[i]`` names the run/group of ``weights[i]``."""
    if len(labels) != len(weights):
        raise ValueError(f"{len(labels)} labels for {len(weights)} weight tensors.")
    xy = embed(weights, perplexity, seed)
    return pd.DataFrame({"label": list(labels), "point": np.arange(len(labels)),
                         "x": xy[:, 0], "y": xy[:, 1]})
