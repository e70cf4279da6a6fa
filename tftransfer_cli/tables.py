"""Tables from any runs folder: one row per configuration, and Tables 2, 4 and 5 of the
paper beside the published ones.

    tftransfer tables RUNS_DIR [RUNS_DIR or summary.csv ...] \
        [--out_dir tables/] [--format markdown|csv|both] [--tables runs,table2,table4,table5]

Input: every driver results record (``results.json``) anywhere below the given
directories; a directory without any gives the rows of the ``summary.csv`` files below it
(:mod:`tftransfer.training.summary`), and a ``.csv`` argument is read as such a table (the
last row per ``output_dir`` kept). Records that are not driver runs (the demo's own
``runs/demo/results.json``: no ``dataset`` nor score) are counted on stderr and skipped.

Splits are never pooled. Each run's split is its recorded ``eval_split`` (``test``, or
``validation``: images held out of the training set, or a segmentation dataset's
validation set); a record without it gets the driver's rule from its flags (validation
when ``--validation_fraction`` or ``--cv_folds`` is set, else test), and one without those
flags either is ``unknown``: shown on its own, never averaged with any other run, left out
of the paper's tables, and named on stderr.

- ``runs``: one row per configuration, i.e. per split and per value of every flag but
  ``--seed`` and the ``output`` ones (``--output_dir``, logging, saving: :data:`OUTPUT_FLAGS`),
  with the flags that differ between configurations as columns (those shared by all are
  in the caption), ``n`` the number of runs (seeds), and ``mean +- std`` (sample std,
  ddof=1; one run shows its value) of the score in % (accuracy, or mIoU), the source-task
  drop and the training seconds;
- Table 2: test accuracy (%) of the test-split runs only, per target dataset, scheme and
  variant (starred: 10 test crops, with ``--keep_aspect`` in the paper's flagfiles),
  ``mean+-std`` over seeds (the CSV's ``runs`` column gives the number), the paper's number
  (:mod:`tftransfer_cli.published`) and ours minus the paper's;
- Table 4: segmentation mean IoU (%) of each network with L2 and L2-SP on Cityscapes val,
  and PSPNet on SBD (VOC 2012 val), from runs without a held-out split, placed by
  :func:`segmentation_cell`;
- Table 5: drop of source-task accuracy (points) after fine-tuning, test-split runs only.

A paper cell whose runs come from more than one configuration (e.g. two strengths alpha)
is not averaged: it says ``mixed (k configurations)`` and stderr names the differing flags.
Cells without runs say ``missing``; datasets outside the paper's (e.g. ``synthetic``) get
extra columns with no published number. ``--out_dir`` also writes each table as .md and
.csv. Only pandas and the standard library are needed (no TensorFlow).
"""
import argparse
import csv
import glob
import json
import os
import sys

MISSING = "missing"
UNKNOWN = "unknown"
TABLES = ("runs", "table2", "table4", "table5")

# The driver's options of effect "output" (tftransfer.training.config; a test checks that
# the two lists agree): they change what a run logs or saves, never its result.
OUTPUT_FLAGS = ("output_dir", "checkpoint_every", "log_every", "export", "save_weights",
                "verbose", "summary_csv")
NOT_CONFIGURATION = ("seed",) + OUTPUT_FLAGS
# The columns of summary.csv that are not flags (tftransfer.training.summary's LEADING,
# METRICS, TIMINGS and PROVENANCE; a test checks that they agree).
SUMMARY_FIELDS = (
    "finished_at", "output_dir", "run_digest", "config_digest",
    "eval_split", "accuracy", "test_accuracy", "validation_accuracy", "cross_entropy",
    "mean_iou", "pixel_accuracy", "source_accuracy_before", "source_accuracy_after",
    "source_drop", "num_train", "num_eval", "num_classes", "steps", "resumed_from_step",
    "train_time_s", "images_per_s", "wall_time_s", "process_s", "before_run_s", "run_s",
    "setup_s", "data_s", "model_s", "probe_s", "train_s", "eval_s", "export_s",
    "method_kind", "method_scheme", "method_parameters", "replicas", "optimizer",
    "dtype_policy", "export_max_abs_diff", "git_commit", "git_dirty", "version_tftransfer",
    "version_tensorflow", "version_keras")
# Flags shown first among the columns of the runs table, in this order.
KEY_FLAGS = ("task", "dataset", "classes", "examples_per_class", "arch", "source", "method",
             "scheme", "alpha", "beta", "learning_rate", "batch_size", "train_steps",
             "validation_fraction", "cv_folds", "cv_fold", "eval_crops")

COLUMNS = ["path", "task", "dataset", "scheme", "starred", "network", "seed", "split",
           "held_out", "config", "flags", "accuracy", "source_drop", "miou", "train_time_s"]


EXTRA_TREE = "cityscapes_extra"  # flags/table4_pspnet_extra_*.cfg's segmentation_folders tree


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directories", nargs="+",
                        help="runs folders searched for results.json (or summary.csv), or "
                        "summary.csv files")
    parser.add_argument("--format", choices=("markdown", "csv", "both"), default="markdown",
                        help="what is printed: Markdown tables (default), their CSV form "
                        "(every number and the whole configuration), or both; --out_dir "
                        "writes both forms")
    parser.add_argument("--out_dir", help="also write every table as .md and .csv here")
    parser.add_argument("--tables", default=",".join(TABLES),
                        help=f"comma-separated tables to print, of {','.join(TABLES)}")
    args = parser.parse_args(argv)
    args.tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = sorted(set(args.tables) - set(TABLES))
    if unknown:
        parser.error(f"--tables: {unknown} are not tables; choose from {list(TABLES)}.")
    for where in args.directories:
        if not os.path.exists(where):
            parser.error(f"{where} does not exist: give a runs folder or a summary.csv.")
    return args


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


def _held_out(flags):
    """Whether the run held images out of its training set (model selection), or None when
    its flags do not say."""
    if "validation_fraction" not in flags and "cv_folds" not in flags:
        return None
    return bool(flags.get("validation_fraction") or flags.get("cv_folds"))


def split_of(record):
    """The split ``record`` was evaluated on: ``eval_split``, else the driver's rule from
    its flags, else :data:`UNKNOWN` (module docstring)."""
    if record.get("eval_split"):
        return record["eval_split"]
    held_out = _held_out(record.get("flags", {}))
    return UNKNOWN if held_out is None else ("validation" if held_out else "test")


def is_driver_record(record):
    """A driver run's record: flags with a dataset and a scheme, and a score."""
    flags = record.get("flags")
    return (isinstance(flags, dict) and "dataset" in flags and "scheme" in flags
            and ("accuracy" in record or "mean_iou" in record))


def configuration(flags):
    """The configuration of a run (every flag but :data:`NOT_CONFIGURATION`), as JSON."""
    return json.dumps({k: v for k, v in flags.items() if k not in NOT_CONFIGURATION},
                      sort_keys=True, default=str)


def _value(text):
    """A summary.csv cell as the value results.json would hold (module
    tftransfer.training.summary: JSON lists and dicts, empty for None)."""
    if text is None or text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def summary_records(path):
    """The records of the rows of a summary.csv (the last row per output_dir)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    records = {}
    for number, row in enumerate(rows):
        values = {k: _value(v) for k, v in row.items() if k is not None}
        flags = {k: v for k, v in values.items() if k not in SUMMARY_FIELDS}
        flags["output_dir"] = values.get("output_dir")
        record = {k: v for k, v in values.items() if k in SUMMARY_FIELDS}
        record["flags"] = flags
        key = values.get("output_dir") or f"{path}:{number + 2}"
        records[key] = (f"{path}:{number + 2}", record)
    return list(records.values())


def find_records(directories):
    """``[(where, record)]``: results.json below each directory (or its summary.csv
    tables when it holds no results.json), and the rows of each .csv argument."""
    found = []
    for where in directories:
        if os.path.isfile(where):
            found += summary_records(where)
            continue
        paths = sorted(glob.glob(os.path.join(where, "**", "results.json"), recursive=True))
        if not paths:
            for table in sorted(glob.glob(os.path.join(where, "**", "summary.csv"),
                                          recursive=True)):
                found += summary_records(table)
            continue
        for path in paths:
            with open(path, encoding="utf-8") as f:
                try:
                    record = json.load(f)
                except ValueError as error:
                    raise SystemExit(f"{path} is damaged ({error}): delete it (the run is "
                                     "then unfinished and resumes) or move it away.")
            found.append((path, record))
    return found


def load_records(directories):
    """One row per driver run found (:func:`find_records`): classification accuracy and
    source drop, segmentation mean IoU, in %; the split, held-out flag and configuration."""
    import pandas as pd

    rows, skipped = [], []
    for path, record in find_records(directories):
        if not isinstance(record, dict) or not is_driver_record(record):
            skipped.append(path)
            continue
        flags = record["flags"]
        task = flags.get("task") or "classification"
        segmentation = task == "segmentation"
        dataset, network = (segmentation_cell(flags) if segmentation
                            else (flags["dataset"], None))
        score = record.get("mean_iou") if segmentation else record.get("accuracy")
        split = split_of(record)
        config = configuration(flags)
        if split == UNKNOWN:  # never pooled: a configuration of its own
            config = json.dumps({"unknown split": path})
        rows.append({"path": path, "task": task, "dataset": dataset,
                     "scheme": flags["scheme"],
                     "starred": not segmentation and flags.get("eval_crops") == 10,
                     "network": network, "seed": flags.get("seed"), "split": split,
                     "held_out": _held_out(flags) or (not segmentation
                                                      and split == "validation"),
                     "config": config, "flags": flags,
                     "accuracy": None if segmentation or score is None else 100 * score,
                     "source_drop": record.get("source_drop"),
                     "miou": 100 * score if segmentation and score is not None else None,
                     "train_time_s": record.get("train_time_s")})
    if skipped:
        print(f"{len(skipped)} record(s) that are not driver runs skipped (no flags with a "
              f"dataset and a scheme, or no score): {', '.join(skipped[:5])}"
              + (" ..." if len(skipped) > 5 else ""), file=sys.stderr)
    unknown = [r["path"] for r in rows if r["split"] == UNKNOWN]
    if unknown:
        print(f"{len(unknown)} run(s) record no eval_split and no --validation_fraction/"
              "--cv_folds: their split is unknown, so they are shown one by one, never "
              "averaged, and left out of the paper's tables (rerun them with this version "
              f"of the driver, or add \"eval_split\" to their results.json): "
              f"{', '.join(unknown[:5])}" + (" ..." if len(unknown) > 5 else ""),
              file=sys.stderr)
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell_text(value):
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell_text(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "-" if value is None else str(value)


def _fmt2(mean, std):
    if mean is None:
        return "-"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} +- {std:.2f}"


def runs_table(frame):
    """The table of configurations (module docstring): ``(shown, numbers, shared)`` with
    ``shared`` the ``{flag: value}`` common to every configuration."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(), pd.DataFrame(), {}
    groups = list(frame.groupby(["split", "config"], sort=False))
    configs = [json.loads(config) for (_, config), _ in groups]
    names = list(dict.fromkeys(n for c in configs for n in c))
    varying = [n for n in names
               if len({json.dumps(c.get(n), sort_keys=True, default=str) for c in configs}) > 1]
    order = [n for n in KEY_FLAGS if n in varying] + [n for n in varying if n not in KEY_FLAGS]
    shared = {n: configs[0].get(n) for n in names if n not in varying}
    shown, numbers = [], []
    for ((split, config), runs), flags in zip(groups, configs):
        score_name = "miou" if (runs.task == "segmentation").all() else "accuracy"
        score = _summary(runs[score_name].astype(float))
        drop = _summary(runs["source_drop"].astype(float))
        seconds = _summary(runs["train_time_s"].astype(float))
        seeds = sorted(runs["seed"].dropna().tolist())
        row = {n: _cell_text(flags.get(n)) for n in order}
        row.update({"split": split, "n": str(len(runs)), "seeds": _cell_text(seeds),
                    ("mIoU (%)" if score_name == "miou" else "accuracy (%)"):
                        _fmt2(score[0], score[1])})
        if drop[2]:
            row["source drop (points)"] = _fmt2(drop[0], drop[1])
        row["train s"] = "-" if seconds[0] is None else f"{seconds[0]:.1f}"
        shown.append(row)
        numbers.append({**{n: flags.get(n) for n in order}, "split": split, "runs": len(runs),
                        "seeds": seeds, "score": score_name, "mean": score[0],
                        "std": score[1], "source_drop_mean": drop[0],
                        "source_drop_std": drop[1], "train_time_s_mean": seconds[0],
                        "config": config})
    columns = list(dict.fromkeys(c for r in shown for c in r))
    return (pd.DataFrame(shown, columns=columns).fillna("-"), pd.DataFrame(numbers), shared)


def _differing(runs):
    """The flags whose values differ between the configurations of ``runs``."""
    configs = [json.loads(c) for c in runs["config"].unique()]
    names = sorted({n for c in configs for n in c})
    return [n for n in names
            if len({json.dumps(c.get(n), sort_keys=True, default=str) for c in configs}) > 1]


def _pooled(runs, column, where):
    """``(mean, std, n)`` of ``runs[column]``, or ``(None, None, -k)`` when the runs come
    from k > 1 configurations (reported on stderr with the flags that differ)."""
    k = runs["config"].nunique()
    if k > 1:
        print(f"{where}: {len(runs)} runs of {k} configurations (they differ in "
              f"{', '.join('--' + n for n in _differing(runs))}): not averaged; see the runs "
              "table", file=sys.stderr)
        return None, None, -k
    return _summary(runs[column].astype(float))


def _ours(mean, std, n):
    if n < 0:
        return f"mixed ({-n} configurations)"
    return MISSING if mean is None else _fmt(mean, std)


def _published():
    from tftransfer_cli import published  # pandas: imported once the arguments are parsed

    return published


def _columns(frame):
    targets = _published().TARGETS
    frame = frame[frame.task != "segmentation"]
    extra = sorted(set(frame["dataset"]) - set(targets)) if len(frame) else []
    return list(targets) + extra


def _summary(values):
    values = values.dropna()
    if values.empty:
        return None, None, 0
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else None), len(values)


def _fmt(mean, std):
    return f"{mean:.1f}" if std is None else f"{mean:.1f}+-{std:.1f}"


def _test_runs(frame):
    """The classification runs evaluated on the test split (Tables 2 and 5)."""
    return frame[(frame.task != "segmentation") & (frame.split == "test")]


def table2(frame):
    """Rows (method, variant) x target columns; cells 'ours (paper, diff)'; test-split runs
    only, one configuration per cell."""
    import pandas as pd

    published = _published()
    test = _test_runs(frame)
    rows, records = [], []
    for starred in (False, True):
        for scheme, label in published.METHODS.items():
            label = label + ("*" if starred else "")
            row = {"method": label}
            for dataset in _columns(frame):
                runs = test[(test.dataset == dataset) & (test.scheme == scheme) &
                            (test.starred == starred)]
                name = published.TARGETS.get(dataset, dataset)
                mean, std, n = _pooled(runs, "accuracy", f"Table 2, {label} on {name}")
                paper = published.table2(scheme, dataset, starred)
                theirs = "-" if paper is None else _fmt(*paper)
                diff = ("-" if mean is None or paper is None else f"{mean - paper[0]:+.1f}")
                row[name] = f"{_ours(mean, std, n)} (paper {theirs}, diff {diff})"
                records.append({"method": label, "dataset": dataset, "runs": max(n, 0),
                                "configurations": -n if n < 0 else int(n > 0),
                                "mean": mean, "std": std,
                                "paper_mean": paper[0] if paper else None,
                                "paper_std": paper[1] if paper else None,
                                "diff": None if mean is None or not paper else mean - paper[0]})
            rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(records)


def table5(frame):
    """Rows target x columns scheme; cells 'our drop (paper, diff)'; test-split runs only."""
    import pandas as pd

    published = _published()
    test = _test_runs(frame)
    rows, records = [], []
    for dataset in _columns(frame):
        name = published.TARGETS.get(dataset, dataset)
        row = {"target": name}
        for scheme, label in published.METHODS.items():
            runs = test[(test.dataset == dataset) & (test.scheme == scheme) & ~test.starred
                        & test.source_drop.notna()]
            mean, std, n = _pooled(runs, "source_drop", f"Table 5, {label} on {name}")
            paper = published.table5(scheme, dataset)
            diff = "-" if mean is None or paper is None else f"{mean - paper:+.1f}"
            row[label] = (f"{_ours(mean, std, n)} (paper "
                          f"{'-' if paper is None else f'{paper:.1f}'}, diff {diff})")
            records.append({"target": dataset, "method": label, "runs": max(n, 0),
                            "configurations": -n if n < 0 else int(n > 0), "mean": mean,
                            "std": std, "paper": paper,
                            "diff": None if mean is None or paper is None else mean - paper})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(records)


def _cell(runs, column, paper, where):
    """``'ours (paper P, diff D)'`` and the numbers behind it."""
    mean, std, n = _pooled(runs, column, where)
    diff = None if mean is None or paper is None else mean - paper
    text = (f"{_ours(mean, std, n)} (paper {'-' if paper is None else f'{paper:.1f}'}, diff "
            f"{'-' if diff is None else f'{diff:+.1f}'})")
    return text, {"runs": max(n, 0), "configurations": -n if n < 0 else int(n > 0),
                  "mean": mean, "std": std, "paper": paper, "diff": diff}


def table4(frame):
    """Rows (target, network) x columns L2, L2-SP; cells 'our mIoU (paper, diff)'. Rows: the
    paper's cells, then any other (dataset, network) pair that has runs. Runs without a
    held-out split only (a segmentation dataset's validation set is the paper's)."""
    import pandas as pd

    published = _published()
    seg = frame[(frame.task == "segmentation") & ~frame.held_out.astype(bool)
                & (frame.split != UNKNOWN)]
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
            label = published.METHODS[scheme]
            row[label], numbers = _cell(
                runs, "miou", published.table4(scheme, dataset, network),
                f"Table 4, {label} {network} on {dataset}")
            records.append({"dataset": dataset, "network": network, "method": label,
                            **numbers})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(records)


def markdown(frame):
    """The table as Markdown (``DataFrame.to_markdown``), cells verbatim."""
    if frame.empty:
        return "(no runs)"
    return frame.to_markdown(index=False, disable_numparse=True)


def _shared_text(shared):
    keys = [n for n in KEY_FLAGS if n in shared]
    return ", ".join(f"{n}={_cell_text(shared[n])}" for n in keys)


def main(argv=None):
    args = parse_args(argv)
    frame = load_records(args.directories)
    print(f"{len(frame)} driver run record(s) found", file=sys.stderr)
    tables = {}
    if "runs" in args.tables:
        shown, numbers, shared = runs_table(frame)
        tables["runs"] = (
            "Runs by configuration (one row per split and configuration: every flag but "
            "--seed and the output ones); score in %, mean +- sample std (ddof=1) over the n "
            "runs (seeds) of each row; validation and test runs are never pooled. Shared by "
            f"every row: {_shared_text(shared) or '-'} (the other shared flags: the "
            "records' flags)", shown, numbers)
    if "table2" in args.tables:
        tables["table2"] = ("Table 2: target test accuracy (%), test-split runs only, "
                            "mean+-std (sample std, ddof=1) over the seeds of each cell (the "
                            "CSV's runs column)", *table2(frame))
    if "table4" in args.tables:
        tables["table4"] = ("Table 4: segmentation mean IoU (%) on the validation set, "
                            "mean+-std (ddof=1) over the seeds of each cell (the CSV's runs "
                            "column); the paper reports one run per cell", *table4(frame))
    if "table5" in args.tables:
        tables["table5"] = ("Table 5: drop of source-task accuracy (points) after "
                            "fine-tuning, test-split runs only, mean+-std (ddof=1) over the "
                            "seeds of each cell", *table5(frame))
    for name, (title, shown, numbers) in tables.items():
        if args.format in ("markdown", "both"):
            print(f"\n{title}\n\n{markdown(shown)}")
        if args.format in ("csv", "both"):
            print(f"\n{title} (CSV)\n\n{numbers.to_csv(index=False).strip()}")
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            _write(os.path.join(args.out_dir, f"{name}.md"), f"{title}\n\n{markdown(shown)}\n")
            _write(os.path.join(args.out_dir, f"{name}.csv"), numbers.to_csv(index=False))


def _write(path, text):
    """Writes ``text`` to ``path`` atomically (a temporary file renamed over it)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


if __name__ == "__main__":
    main()
