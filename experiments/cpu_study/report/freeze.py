"""Report section on freezing the first k units (Li et al. 2018, Figure 3)."""
import pandas as pd

from experiments.cpu_study.report.common import fmt, label, select, stats, table
from experiments.cpu_study.report.figures import lines as line_figure


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the freezing sweep."""
    s, runs = t["study"]["settings"], t["runs"]
    frozen = select(runs, experiment="freeze")
    if frozen.empty:
        return [], {}
    main = select(runs, experiment="main", split=s["freeze_split"])
    rows, summary = [], []
    ks = [0] + list(s["freeze_units"])
    for base in ("l2", "l2_sp"):
        row = [label(base)]
        for k in ks:
            sub = select(main, method=base) if k == 0 else select(frozen,
                                                                  method=f"freeze{k}_{base}")
            st = stats(sub)
            row.append(fmt(st))
            summary.append(dict(method=base, k=k, acc=st[0], acc_std=st[1]))
        rows.append(row)
    frame = pd.DataFrame(summary)
    figures = {"freeze.png": line_figure(
        frame, "k", "acc", "method", f"first k units frozen, {s['freeze_split']} split",
        "k, first units frozen (count: stem, then blocks)", "test accuracy (%)",
        integer_x=True, dodge=0.06)}
    best = {b: frame[frame["method"] == b].sort_values("acc").iloc[-1] for b in ("l2", "l2_sp")}
    return ["## Freezing the first k units (Figure 3 analog)", "",
            f"{s['freeze_split']} split, test accuracy (%), mean ± std over seeds; units: stem, then one residual block per stage "
            "(k = 4 would freeze the whole backbone: L2 and L2-SP then penalise only frozen "
            "weights and train identically, so it is not run; the linear probe of the main "
            "table is that case with batch-norm statistics frozen too); k = 0 "
            f"is the main experiment ({s['seeds']} seeds), k > 0 {s['axis_seeds']} seeds.", "",
            table(["method"] + [f"k = {k}" for k in ks], rows), "",
            "![freeze](freeze.png)", "",
            f"Best k: L2 at k = {int(best['l2']['k'])} ({best['l2']['acc']:.2f}), L2-SP at "
            f"k = {int(best['l2_sp']['k'])} ({best['l2_sp']['acc']:.2f}). The paper: with "
            "L2, freezing the first layers helps; L2-SP with nothing frozen beats every "
            "frozen variant of both.", ""], figures
