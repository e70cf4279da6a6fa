"""Compares the CSV tables of two study report folders, timing columns left out.

    python -m experiments.cpu_study.compare BEFORE_DIR AFTER_DIR [--rtol 0]

The proof that a restructuring changed no behaviour: every ``*.csv`` of the two folders
must have the same rows and columns, and the same values in every column except the
wall-clock ones (names ending in ``_time_s`` or ``_s``). Numbers are equal when
``|a - b| <= rtol * |b|`` (``--rtol 0``, the default, asks for bitwise-equal text after
parsing). Prints one line per table and exits 1 if any table differs.
"""
import argparse
import glob
import os
import sys


def timing_column(name):
    """True for a column that measures wall-clock time (never compared)."""
    return name.endswith("_s")


def compare_table(before, after, rtol):
    """Returns a list of differences between two CSV files (empty when equal)."""
    import numpy as np
    import pandas as pd

    old, new = pd.read_csv(before), pd.read_csv(after)
    problems = []
    if list(old.columns) != list(new.columns):
        return [f"columns differ: {list(old.columns)} vs {list(new.columns)}"]
    if len(old) != len(new):
        return [f"{len(old)} rows vs {len(new)} rows"]
    for column in old.columns:
        if timing_column(column):
            continue
        a, b = old[column], new[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            a, b = a.to_numpy(float), b.to_numpy(float)
            same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= rtol * np.abs(b))
            if not same.all():
                worst = np.nanmax(np.abs(a - b))
                problems.append(f"{column}: {int((~same).sum())} values differ (max |diff| {worst:.3g})")
        elif not a.astype(str).equals(b.astype(str)):
            problems.append(f"{column}: {int((a.astype(str) != b.astype(str)).sum())} values differ")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="report folder of the old code")
    parser.add_argument("after", help="report folder of the new code")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance of numbers")
    args = parser.parse_args(argv)
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(args.before, "*.csv")))
    missing = [n for n in names if not os.path.exists(os.path.join(args.after, n))]
    if not names or missing:
        print(f"no CSV tables in {args.before}" if not names else f"missing in {args.after}: {missing}")
        return 1
    failed = False
    for name in names:
        problems = compare_table(os.path.join(args.before, name), os.path.join(args.after, name),
                                 args.rtol)
        rows = sum(1 for _ in open(os.path.join(args.before, name))) - 1
        print(f"{name}: {rows} rows, " + ("same" if not problems else "; ".join(problems)))
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
