"""The CPU study's report, ``README.md`` and its figures, generated from the study's CSV
files and ``part.json`` files only (:func:`write_report`): every number and every sentence that
compares methods is computed from those files, so the report cannot disagree with them.
The published numbers it quotes come from :mod:`tftransfer_cli.published`.

One module per section, each with ``section(t) -> (Markdown lines, {file name: Figure})``
(a Figure of None: the section draws no such figure, and a stale file of that name goes)
on the tables ``t`` of :func:`experiments.cpu_study.experiments.load_tables`; the
statistics convention (mean ± sample std, ddof=1, over seeds; the two-SE rule) is in
:mod:`.common`.
"""
import os

from tftransfer.analysis.cli import write_png
from tftransfer.io_utils import atomic_write_text
from experiments.cpu_study.experiments import load_tables
from experiments.cpu_study.report import (axes, checkpoints, companions, deviation,
                                          figure1, fisher,
                                          freeze, header, imagenet, landscape, main,
                                          methods_table, protocol_section, r2, segmentation,
                                          source_drop, transferability, verdict, version1)
from experiments.cpu_study.report.common import compare, label, stats

__all__ = ["write_report", "load_tables", "compare", "label", "stats"]

SECTIONS = (verdict, companions, protocol_section, main, version1, methods_table,
            source_drop, axes,
            deviation, figure1, freeze, r2, fisher, landscape, imagenet, segmentation,
            checkpoints, transferability)


def write_report(report_dir):
    """Draws the figures and writes ``README.md`` in ``report_dir`` from its CSV files;
    returns the README's path."""
    t = load_tables(report_dir)
    body = []
    for module in SECTIONS:
        lines, figures = module.section(t)
        body += lines
        for name, fig in figures.items():
            if fig is None:  # the section draws no such figure: remove a stale one
                if os.path.exists(os.path.join(report_dir, name)):
                    os.remove(os.path.join(report_dir, name))
                continue
            write_png(fig, os.path.join(report_dir, name))
    path = os.path.join(report_dir, "README.md")
    atomic_write_text(path, "\n".join(header.head(t) + body + header.files()))
    return path
