"""Tables 2 and 5 of the paper from the driver's results records, beside the published ones.

    python -m experiments.make_tables runs/ [--out_dir tables/] [--format markdown|csv|both]

Reads every ``results.json`` under the given directories (pandas), groups the runs by
target dataset, scheme and variant (starred: 10 test crops, with ``--keep_aspect`` in the
paper's flagfiles), and
prints:

- Table 2: test accuracy (%), ``mean+-std`` over seeds (sample std, n-1; a single run shows
  its value), the paper's number and ours minus the paper's;
- Table 5: drop of source-task accuracy (points) after fine-tuning, mean over seeds, the
  paper's drop and the difference.

Cells without runs say ``missing``; datasets outside the paper's (e.g. ``synthetic``) get
extra columns with no published number. ``--out_dir`` also writes table2/table5 as .md
and .csv.
"""
import argparse
import glob
import json
import os
import sys

import pandas as pd

TARGETS = {"caltech256_30": "Caltech-30", "caltech256_60": "Caltech-60",
           "mit_indoor67": "Indoors", "stanford_dogs120": "Dogs", "food101": "Foods"}
SCHEMES = {"l2": "L2", "l2_sp": "L2-SP", "l2_sp_fisher": "L2-SP-Fisher"}
# The paper's Table 2 (mean, std over 5 runs) and Table 5 (drop in points), RECIPE.md.
PAPER_TABLE2 = {
    ("l2", False): [(81.5, 0.2), (85.3, 0.2), (79.6, 0.5), (66.3, 0.2), (84.6, 0.1)],
    ("l2_sp", False): [(83.5, 0.1), (86.4, 0.2), (84.2, 0.3), (74.9, 0.2), (85.4, 0.3)],
    ("l2_sp_fisher", False): [(83.3, 0.1), (86.0, 0.1), (84.0, 0.4), (74.4, 0.1), (85.1, 0.1)],
    ("l2", True): [(82.7, 0.2), (86.5, 0.4), (80.7, 0.9), (67.7, 0.3), (86.7, 0.2)],
    ("l2_sp", True): [(84.9, 0.1), (87.9, 0.2), (85.2, 0.3), (77.1, 0.2), (87.1, 0.1)],
    ("l2_sp_fisher", True): [(84.8, 0.1), (87.9, 0.1), (85.2, 0.1), (76.9, 0.1), (87.0, 0.1)],
}
PAPER_TABLE5 = {"mit_indoor67": (24.1, 5.3, 4.9), "caltech256_30": (15.4, 4.2, 3.6),
                "caltech256_60": (16.9, 3.6, 3.2), "stanford_dogs120": (14.1, 4.7, 4.2),
                "food101": (68.6, 64.5, 53.2)}
MISSING = "missing"


def load_records(directories):
    """One row per results.json under ``directories``."""
    rows = []
    for directory in directories:
        for path in sorted(glob.glob(os.path.join(directory, "**", "results.json"),
                                     recursive=True)):
            with open(path) as f:
                record = json.load(f)
            flags = record["flags"]
            rows.append({"path": path, "dataset": flags["dataset"], "scheme": flags["scheme"],
                         "starred": flags["eval_crops"] == 10,
                         "seed": flags["seed"], "accuracy": 100 * record["accuracy"],
                         "source_drop": record.get("source_drop")})
    return pd.DataFrame(rows, columns=["path", "dataset", "scheme", "starred", "seed",
                                       "accuracy", "source_drop"])


def _columns(frame):
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
            for i, dataset in enumerate(_columns(frame)):
                runs = frame[(frame.dataset == dataset) & (frame.scheme == scheme) &
                             (frame.starred == starred)]
                mean, std, n = _summary(runs["accuracy"])
                paper = PAPER_TABLE2[scheme, starred][i] if dataset in TARGETS else None
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
        for j, (scheme, label) in enumerate(SCHEMES.items()):
            runs = frame[(frame.dataset == dataset) & (frame.scheme == scheme) &
                         ~frame.starred]
            mean, std, n = _summary(runs["source_drop"].astype(float))
            paper = PAPER_TABLE5[dataset][j] if dataset in PAPER_TABLE5 else None
            ours = MISSING if mean is None else _fmt(mean, std)
            diff = "-" if mean is None or paper is None else f"{mean - paper:+.1f}"
            row[label] = f"{ours} (paper {'-' if paper is None else paper}, diff {diff})"
            records.append({"target": dataset, "method": label, "runs": n, "mean": mean,
                            "std": std, "paper": paper,
                            "diff": None if mean is None or paper is None else mean - paper})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(records)


def markdown(frame):
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(
        index=False)]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directories", nargs="+", help="directories searched for results.json")
    parser.add_argument("--format", choices=("markdown", "csv", "both"), default="both")
    parser.add_argument("--out_dir", help="also write table2/table5 .md and .csv here")
    args = parser.parse_args(argv)
    frame = load_records(args.directories)
    print(f"{len(frame)} results record(s) found", file=sys.stderr)
    tables = {"table2": ("Table 2: target test accuracy (%), mean+-std over seeds",
                         *table2(frame)),
              "table5": ("Table 5: drop of source-task accuracy (points) after fine-tuning",
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
