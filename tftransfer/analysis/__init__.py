"""Measurements that explain transfer. Each analysis function returns data (a pandas
DataFrame or NumPy arrays); :mod:`.plots` draws them (one ``plot_*`` per figure) and the
callers write files (:mod:`.cli` for the command-line tools).

Modules: :mod:`.r2` (layer-wise R^2, Li et al. 2018, Figure 4), :mod:`.fisher_stats`
(Fisher distributions, Figure 5), :mod:`.source_task` (source accuracy with the source head
put back, Table 5), :mod:`.deviation` (``||W - W0||_F / sqrt(n)`` callback), :mod:`.landscape`
(filter-normalised loss slices), :mod:`.gradients` (gradient norms, loss along the
gradient), :mod:`.spectrum` (feature spectra, probe vs fine-tune across checkpoints),
:mod:`.weight_map` (t-SNE of weights; needs scikit-learn). See docs/analysis.md.
"""
from tftransfer.analysis import (deviation, fisher_stats, gradients, landscape, plots, r2,
                                 source_task, spectrum, weight_map)

__all__ = ["deviation", "fisher_stats", "gradients", "landscape", "plots", "r2",
           "source_task", "spectrum", "weight_map"]
