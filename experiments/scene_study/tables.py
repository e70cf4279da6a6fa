"""The files of the segmentation study in its report directory (beside the classification
study's, hence the ``segmentation`` prefix) and their reading and writing.

- ``segmentation_sources.csv``: the source run (split, classes, images, steps, source test
  accuracy);
- ``segmentation_selection.csv``: one row per validation run (target, method, alpha, beta,
  validation mIoU and pixel accuracy, validation scenes);
- ``segmentation_runs.csv``: one row per final run (target, method, alpha, beta, seed, test
  mIoU, pixel accuracy, test scenes, per-class IoU ``iou:<class>``, times);
- ``segmentation_study.json``: settings, command, wall time, times per phase, runs trained
  and reused;
- ``segmentation_examples.npz``: the figure's scenes and masks (:mod:`.examples`);
- ``segmentation_masks.png`` and ``segmentation.md``: the figure and the page.
"""
import json
import os

import pandas as pd

from tftransfer.io_utils import atomic_write_json, atomic_write_text

TABLES = ("sources", "selection", "runs")
STUDY = "segmentation_study.json"
EXAMPLES = "segmentation_examples.npz"
FIGURE = "segmentation_masks.png"
PAGE = "segmentation.md"


def csv_name(table):
    return f"segmentation_{table}.csv"


def write(directory, rows, study):
    """``rows``: ``{table: [dict]}``; ``study``: the JSON-ready ``segmentation_study.json``."""
    os.makedirs(directory, exist_ok=True)
    for name in TABLES:
        frame = pd.DataFrame(rows.get(name, []))
        atomic_write_text(os.path.join(directory, csv_name(name)),
                          frame.to_csv(index=False, float_format="%.6g"))
    atomic_write_json(os.path.join(directory, STUDY), study)


def load(directory):
    """``{table: DataFrame, "study": dict}`` as written by :func:`write` (an empty
    DataFrame for a table with no row)."""
    path = os.path.join(directory, STUDY)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: run `python -m experiments.scene_study` "
                                "(without --report_only) first, or pass the --report_dir "
                                "that holds its tables.")
    tables = {}
    for name in TABLES:
        csv = os.path.join(directory, csv_name(name))
        has_rows = os.path.exists(csv) and os.path.getsize(csv) > 1
        tables[name] = pd.read_csv(csv) if has_rows else pd.DataFrame()
    with open(path) as f:
        tables["study"] = json.load(f)
    return tables
