"""Report section of part ``methods_<split>``: every method of issue 19 with its own
hyper-parameter chosen by k-fold cross-validation, read against plain fine-tuning.

From the tables ``methods_runs`` (final runs: one row per method and seed, with the chosen
``flag`` / ``value``) and ``methods_selection`` (one row per method and value: pooled
validation accuracy and cross-entropy over the folds, ``chosen``) only. Each method's test
accuracy is mean ± sample std (ddof=1) over its seeds, compared with ``none`` by the
two-SE rule (:func:`experiments.cpu_study.report.common.compare`).
"""
import math


from tftransfer import methods as methods_lib
from tftransfer.analysis import style
from tftransfer.analysis.plots import new_figure
from experiments.cpu_study.report.common import (Claim, compare, fmt, label, select, stats,
                                                 table, verdict_of)

REFERENCE = "none"
TITLE = "## Every method with its own selected hyper-parameter (issue 19)"


def _frames(t):
    runs, sel = t.get("methods_runs"), t.get("methods_selection")
    if runs is None or runs.empty:
        return None, None
    return runs, sel


def _splits(runs):
    return list(dict.fromkeys(runs["split"]))


def _methods(runs):
    present = [m for m in dict.fromkeys(runs["method"]) if m != REFERENCE]
    return sorted(present, key=lambda m: (style.order(m), m))


def _chosen(sub):
    """'--flag=value' of the final runs ``sub`` (one method, one split)."""
    flag, value = sub["flag"].iloc[0], sub["value"].iloc[0]
    if not isinstance(flag, str) or not flag or (isinstance(value, float) and
                                                 math.isnan(value)):
        return "-"
    return f"--{flag}={value:g}"


def comparisons(runs):
    """``{(split, method): (stats, reference stats, (d, se, word))}`` of every method."""
    out = {}
    for split in _splits(runs):
        ref = stats(select(runs, split=split, method=REFERENCE))
        for m in _methods(runs):
            st = stats(select(runs, split=split, method=m))
            out[(split, m)] = (st, ref, compare(st, ref))
    return out


def _word(d, se, word):
    if word == "not measured":
        return "not measured"
    return f"{d:+.2f} ± {2 * se:.2f}: {word}"


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the methods table and selection
    curves; ``[], {}`` when the part has not run."""
    runs, sel = _frames(t)
    if runs is None:
        return [], {}
    comp = comparisons(runs)
    lines = [TITLE, ""]
    figures = {}
    for split in _splits(runs):
        here = select(runs, split=split)
        seeds = sorted(set(here["seed"]))
        ref = stats(select(here, method=REFERENCE))
        rows = [[label(REFERENCE), "-", fmt(ref), "reference"]]
        for m in _methods(here):
            st, _, c = comp[(split, m)]
            rows.append([label(m), _chosen(select(here, method=m)), fmt(st), _word(*c)])
        n, steps = int(here["examples_per_class"].iloc[0]), int(here["steps"].iloc[0])
        folds = (int(select(sel, split=split)["folds"].max())
                 if sel is not None and not sel.empty else 0)
        lines += [
            f"**{split} split**: test accuracy (%), mean ± std (ddof=1) over seeds "
            f"{', '.join(str(s) for s in seeds)} ({len(seeds)} seeds), {n} labelled images "
            f"per class, {steps} iterations; each method's hyper-parameter chosen by "
            f"{folds}-fold cross-validation on the labelled images (pooled validation "
            "accuracy, ties to the lower pooled cross-entropy, then to the weaker value), "
            "never on test. Last column: difference from plain fine-tuning in points ± "
            "two standard errors, and the two-SE verdict.", "",
            table(["method", "chosen", "test accuracy", "vs plain fine-tuning"], rows), ""]
        if sel is not None and not sel.empty:
            lines += _selection_lines(select(sel, split=split))
            name = f"methods_selection_{split}.png"
            figures[name] = selection_figure(select(sel, split=split), split)
            lines += [f"![selection curves, {split}]({name})", ""]
    return lines, figures


def _selection_lines(sel):
    """One line per method: each value's pooled validation accuracy / cross-entropy."""
    rows = []
    for m in sorted(dict.fromkeys(sel["method"]), key=lambda m: (style.order(m), m)):
        sub = select(sel, method=m).sort_values("value")
        cells = [f"{v:g}: {100 * a:.1f} / {ce:.3f}" + (" *" if c else "")
                 for v, a, ce, c in zip(sub["value"], sub["val_accuracy"],
                                        sub["val_cross_entropy"], sub["chosen"])]
        rows.append([label(m), f"--{sub['flag'].iloc[0]}", "; ".join(cells)])
    n_val = int(sel["num_val"].iloc[0])
    return [f"Selection: pooled validation accuracy (%) / cross-entropy per value ({n_val} "
            f"validation images pooled over the folds; one image is {100 / n_val:.1f} "
            "points); * chosen.", "",
            table(["method", "flag", "value: accuracy / cross-entropy"], rows), ""]


def selection_figure(sel, split):
    """Pooled validation accuracy (solid, left axis) and cross-entropy (dashed, right
    axis) per value, one panel per method, the chosen value circled."""
    methods = sorted(dict.fromkeys(sel["method"]), key=lambda m: (style.order(m), m))
    cols = min(4, len(methods))
    rows = -(-len(methods) // cols)
    fig, _ = new_figure(3.0 * cols, 2.4 * rows)
    fig.clear()
    for i, m in enumerate(methods):
        ax = fig.add_subplot(rows, cols, i + 1)
        sub = select(sel, method=m).sort_values("value")
        x = sub["value"].to_numpy(float)
        positive = x[x > 0]
        log = positive.size == x.size and x.size > 1 and x.max() / x.min() >= 10
        colour = style.colour(m)
        ax.plot(x, 100 * sub["val_accuracy"], "-o", color=colour, ms=3)
        chosen = sub[sub["chosen"].astype(bool)]
        ax.plot(chosen["value"], 100 * chosen["val_accuracy"], "o", mfc="none", ms=9,
                color="black")
        twin = ax.twinx()
        twin.plot(x, sub["val_cross_entropy"], "--s", color="grey", ms=3)
        if log:
            ax.set_xscale("log")
            style.log_ticks(ax.xaxis, x)
        ax.set_title(f"{label(m)}", fontsize=9)
        ax.set_xlabel(f"--{sub['flag'].iloc[0]}", fontsize=8)
        ax.tick_params(labelsize=7)
        twin.tick_params(labelsize=7, colors="grey")
        if i % cols == 0:
            ax.set_ylabel("val. accuracy (%)", fontsize=8)
        if i % cols == cols - 1 or i == len(methods) - 1:
            twin.set_ylabel("val. cross-entropy", fontsize=8, color="grey")
    fig.suptitle(f"{split} split: pooled validation accuracy (solid) and cross-entropy "
                 "(dashed, right axis); circled: chosen", fontsize=9)
    return fig


def claims(t):
    """One claim per method: its paper's 'improves on plain fine-tuning', decided by the
    two-SE rule on each split's test accuracies (agrees / disagrees / cannot tell)."""
    runs, _ = _frames(t)
    if runs is None:
        return []
    out = []
    for (split, m), (st, ref, (d, se, word)) in comparisons(runs).items():
        try:
            paper = methods_lib.get(m).paper
        except ValueError:
            paper = m
        out.append(Claim(
            paper, f"{label(m)} improves on plain fine-tuning ({split} split, its "
            "hyper-parameter chosen by cross-validation)", verdict_of(word, "higher"),
            f"{label(m)} {fmt(st)} vs plain fine-tuning {fmt(ref)}, n = {st[2]} / {ref[2]} "
            f"seeds, {d:+.2f} points, 2 SE = {2 * se:.2f}"))
    return out
