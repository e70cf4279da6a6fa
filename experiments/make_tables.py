"""Tables 2, 4 and 5 of the paper from the driver's results records, beside the published ones.

    python -m experiments.make_tables runs/ [--out_dir tables/] [--format markdown|csv|both]

Reads every ``results.json`` under the given directories (pandas), groups the runs by
target dataset, scheme and variant (starred: 10 test crops, with ``--keep_aspect`` in the
paper's flagfiles), and
prints:

- Table 2: test accuracy (%), ``mean+-std`` over seeds (sample std, ddof=1; a single run
  shows its value; the CSV's ``runs`` column gives the number of seeds), the paper's number
  (:mod:`experiments.published`) and ours minus the paper's;
- Table 4: segmentation mean IoU (%) of each network with L2 and L2-SP on Cityscapes val,
  and PSPNet on SBD (VOC 2012 val), mean+-std over seeds, the paper's number and the
  difference (runs of ``--task=segmentation``, placed by :func:`segmentation_cell`);
- Table 5: drop of source-task accuracy (points) after fine-tuning, mean+-std over seeds, the
  paper's drop and the difference.

Cells without runs say ``missing``; datasets outside the paper's (e.g. ``synthetic``) get
extra columns with no published number. ``--out_dir`` also writes table2/table5 as .md
and .csv (and table4).
"""
import argparse
import glob
import json
import os
import sys

import pandas as pd

from experiments import published

TARGETS, SCHEMES = published.TARGETS, published.METHODS
MISSING = "missing"


COLUMNS = ["path", "task", "dataset", "scheme", "starred", "network", "seed", "accuracy",
           "source_drop", "miou"]


EXTRA_TREE = "cityscapes_extra"  # flags/table4_pspnet_extra_*.cfg's segmentation_folders tree


def segmentation_cell(flags):
    """``(dataset, network)``: the Table 4 cell of a segmentation run's flags. The network is
    ``--seg_head``; ``deeplab_coco`` for DeepLab from other weights (``--source=custom``,
    flags/table4_deeplab_coco_*.cfg); ``(cityscapes, pspnet_extra)`` for PSPNet trained on
    the ``segmentation_folders`` tree of the fine and coarse Cityscapes images
    (``--manual_dir=.../cityscapes_extra``, flags/table4_pspnet_extra_*.cfg)."""
    dataset, head = flags["dataset"], flags.get("seg_head")
    if head == "deeplab" and flags.get("source") == "custom":
        return dataset, "deeplab_coco"
    manual = (flags.get("manual_dir") or "").rstrip("/")
    if head == "pspnet" and dataset == "segmentation_folders" and \
            os.path.basename(manual) == EXTRA_TREE:
        return "cityscapes", "pspnet_extra"
    return dataset, head


def load_records(directories):
    """One row per results.json under ``directories`` (classification: accuracy and source
    drop; segmentation: mean IoU), percentages."""
    rows = []
    for directory in directories:
        for path in sorted(glob.glob(os.path.join(directory, "**", "results.json"),
                                     recursive=True)):
            with open(path) as f:
                record = json.load(f)
            flags = record["flags"]
            task = flags.get("task", "classification")
            segmentation = task == "segmentation"
            dataset, network = (segmentation_cell(flags) if segmentation
                                else (flags["dataset"], None))
            rows.append({"path": path, "task": task, "dataset": dataset,
                         "scheme": flags["scheme"],
                         "starred": not segmentation and flags.get("eval_crops") == 10,
                         "network": network,
                         "seed": flags["seed"],
                         "accuracy": None if segmentation else 100 * record["accuracy"],
                         "source_drop": record.get("source_drop"),
                         "miou": 100 * record["mean_iou"] if segmentation else None})
    return pd.DataFrame(rows, columns=COLUMNS)


def _columns(frame):
    frame = frame[frame.task != "segmentation"]
    extra = sorted(set(frame["dataset"]) - set(TARGETS)) if len(frame) else []
    return list(TARGETS) + extra


def _summary(values):
    values = values.dropna()
    if values.empty:
        return None, None, 0
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else None), len(values)


def _fmt(mean, std):
    return f"{mean:.1f}" if std is None else f"{mean:.1f}+-{std:.1f}"


def table2(frame):
    """Rows (method, variant) x target columns; cells 'ours (paper, diff)'."""
    rows, records = [], []
    for starred in (False, True):
        for scheme, label in SCHEMES.items():
            label = label + ("*" if starred else "")
            row = {"method": label}
            for dataset in _columns(frame):
                runs = frame[(frame.dataset == dataset) & (frame.scheme == scheme) &
                             (frame.starred == starred)]
                mean, std, n = _summary(runs["accuracy"])
                paper = published.table2(scheme, dataset, starred)
                name = TARGETS.get(dataset, dataset)
                ours = MISSING if mean is None else _fmt(mean, std)
                theirs = "-" if paper is None else _fmt(*paper)
                diff = ("-" if mean is None or paper is None else f"{mean - paper[0]:+.1f}")
                row[name] = f"{ours} (paper {theirs}, diff {diff})"
                records.append({"method": label, "dataset": dataset, "runs": n,
                                "mean": mean, "std": std,
                                "paper_mean": paper[0] if paper else None,
                                "paper_std": paper[1] if paper else None,
                                "diff": None if mean is None or not paper else mean - paper[0]})
            rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(records)


def table5(frame):
    """Rows target x columns scheme; cells 'our drop (paper, diff)'."""
    rows, records = [], []
    for dataset in _columns(frame):
        row = {"target": TARGETS.get(dataset, dataset)}
        for scheme, label in SCHEMES.items():
            runs = frame[(frame.dataset == dataset) & (frame.scheme == scheme) &
                         ~frame.starred]
            mean, std, n = _summary(runs["source_drop"].astype(float))
            paper = published.table5(scheme, dataset)
            ours = MISSING if mean is None else _fmt(mean, std)
            diff = "-" if mean is None or paper is None else f"{mean - paper:+.1f}"
            row[label] = f"{ours} (paper {'-' if paper is None else f'{paper:.1f}'}, diff {diff})"
            records.append({"target": dataset, "method": label, "runs": n, "mean": mean,
                            "std": std, "paper": paper,
                            "diff": None if mean is None or paper is None else mean - paper})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(records)


def _cell(values, paper):
    """``'ours (paper P, diff D)'`` and the numbers behind it."""
    mean, std, n = _summary(values.astype(float))
    ours = MISSING if mean is None else _fmt(mean, std)
    diff = None if mean is None or paper is None else mean - paper
    text = (f"{ours} (paper {'-' if paper is None else f'{paper:.1f}'}, diff "
            f"{'-' if diff is None else f'{diff:+.1f}'})")
    return text, {"runs": n, "mean": mean, "std": std, "paper": paper, "diff": diff}


def table4(frame):
    """Rows (target, network) x columns L2, L2-SP; cells 'our mIoU (paper, diff)'. Rows: the
    paper's cells, then any other (dataset, network) pair that has runs."""
    seg = frame[frame.task == "segmentation"]
    pairs = [tuple(k) for k in published.TABLE4[["dataset", "network"]].drop_duplicates()
             .itertuples(index=False)]
    pairs += sorted({(d, n) for d, n in zip(seg["dataset"], seg["network"])} - set(pairs))
    rows, records = [], []
    for dataset, network in pairs:
        row = {"target": published.SEGMENTATION_TARGETS.get(dataset, dataset),
               "network": published.SEGMENTATION_NETWORKS.get(network, network)}
        for scheme in ("l2", "l2_sp"):
            runs = seg[(seg.dataset == dataset) & (seg.network == network) &
                       (seg.scheme == scheme)]
            row[SCHEMES[scheme]], numbers = _cell(
                runs["miou"], published.table4(scheme, dataset, network))
            records.append({"dataset": dataset, "network": network,
                            "method": SCHEMES[scheme], **numbers})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(records)


def markdown(frame):
    """The table as Markdown (``DataFrame.to_markdown``), cells verbatim."""
    return frame.to_markdown(index=False, disable_numparse=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directories", nargs="+", help="directories searched for results.json")
    parser.add_argument("--format", choices=("markdown", "csv", "both"), default="both")
    parser.add_argument("--out_dir", help="also write table2/table5 .md and .csv here")
    args = parser.parse_args(argv)
    frame = load_records(args.directories)
    print(f"{len(frame)} results record(s) found", file=sys.stderr)
    tables = {"table2": ("Table 2: target test accuracy (%), mean+-std (sample std, ddof=1) over the seeds "
                         "of each cell (the CSV's runs column)",
                         *table2(frame)),
              "table4": ("Table 4: segmentation mean IoU (%) on the validation set, "
                         "mean+-std (ddof=1) over the seeds of each cell (the CSV's runs "
                         "column); the paper reports one run per cell", *table4(frame)),
              "table5": ("Table 5: drop of source-task accuracy (points) after fine-tuning, "
                         "mean+-std (ddof=1) over the seeds of each cell",
                         *table5(frame))}
    for name, (title, shown, numbers) in tables.items():
        if args.format in ("markdown", "both"):
            print(f"\n{title}\n\n{markdown(shown)}")
        if args.format in ("csv", "both"):
            print(f"\n{title} (CSV)\n\n{numbers.to_csv(index=False).strip()}")
        if args.out_dir:
            from tftransfer.io_utils import atomic_write_text
            atomic_write_text(os.path.join(args.out_dir, f"{name}.md"),
                              f"{title}\n\n{markdown(shown)}\n")
            atomic_write_text(os.path.join(args.out_dir, f"{name}.csv"),
                              numbers.to_csv(index=False))


if __name__ == "__main__":
    main()
