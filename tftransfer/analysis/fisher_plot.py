"""Transitional alias of :mod:`tftransfer.analysis.fisher_stats` for
``experiments/cpu_study/experiments.py``; delete once that file imports ``fisher_stats``."""
from tftransfer.analysis.fisher_stats import fisher_summary  # noqa: F401
