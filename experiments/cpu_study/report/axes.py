"""Report sections on the target size (Li et al. 2018's Caltech-30 vs -60 comparison) and
on the training length, with their figures."""
import pandas as pd

from experiments.cpu_study.report.common import chosen_alpha, fmt, label, select, stats, table
from experiments.cpu_study.report.figures import lines as line_figure


def _gaps(frame):
    """'L2-SP - none +x.xx[, L2-SP - L2 +y.yy]': differences of mean test accuracy (points)
    between the methods present in ``frame``."""
    mean = {m: stats(select(frame, method=m))[0] for m in ("l2_sp", "none", "l2")
            if m in set(frame["method"])}
    return ", ".join(f"L2-SP - {label(b) if b == 'l2' else b} {mean['l2_sp'] - mean[b]:+.2f}"
                     for b in ("none", "l2") if b in mean and "l2_sp" in mean)


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the size and length experiments."""
    runs, s = t["runs"], t["study"]["settings"]
    lines, figures = [], {}
    main, sizes = select(runs, experiment="main"), select(runs, experiment="sizes")
    axis = pd.concat([main[main["method"].isin(s["axis_methods"])], sizes])
    if not sizes.empty:
        rows, gaps = [], []
        splits = [x for x in s["splits"] if x in set(sizes["split"])]
        ns = sorted(set(axis["examples_per_class"]))
        summary = []
        for x in splits:
            for m in s["axis_methods"]:
                row = [x, label(m)]
                for n in ns:
                    st = stats(select(axis, split=x, method=m, examples_per_class=n))
                    row.append(f"{fmt(st)} ({chosen_alpha(axis, split=x, method=m, examples_per_class=n)})")
                    summary.append(dict(panel=x, method=m, n=n, acc=st[0], acc_std=st[1]))
                rows.append(row)
            for n in ns:
                gaps.append(f"{x}, {n}/class: " + _gaps(select(axis, split=x,
                                                                 examples_per_class=n)))
        figures["accuracy_vs_size.png"] = line_figure(
            pd.DataFrame(summary).assign(panel=lambda f: f["panel"] + " split"), "n", "acc",
            "method", "", "labelled images per class (log scale)", "test accuracy (%)",
            logx=True, panels=[f"{x} split" for x in splits], dodge=0.012)
        lines += ["## Target size (Caltech-30 vs -60 analog)", "",
                  f"Test accuracy (%), alpha chosen per cell on its validation split; "
                  f"mean ± std over seeds; {s['main_examples']}/class is the main experiment "
                  f"({s['seeds']} seeds), the other sizes {s['axis_seeds']} seeds.", "",
                  table(["split", "method"] + [f"{n}/class" for n in ns], rows), "",
                  "![sizes](accuracy_vs_size.png)", "",
                  "Gaps in points (mean differences): " + "; ".join(gaps) + ".", ""]
    lengths = select(runs, experiment="lengths")
    if not lengths.empty:
        split = s["length_split"]
        axis = pd.concat([select(main, split=split)[lambda f: f["method"].isin(
            s["axis_methods"])], lengths])
        rows, summary, gaps = [], [], []
        steps = sorted(set(axis["steps"]))
        for m in s["axis_methods"]:
            row = [label(m)]
            for n in steps:
                sub = select(axis, method=m, steps=n)
                acc, dist = stats(sub), stats(sub, "distance", 1.0)
                row.append(f"{fmt(acc)} / {dist[0]:.4f}")
                summary.append(dict(panel="accuracy (%)", method=m, steps=n, value=acc[0],
                                    value_std=acc[1]))
                summary.append(dict(panel="RMS distance from w0", method=m, steps=n,
                                    value=dist[0], value_std=dist[1]))
            rows.append(row)
        for n in steps:
            gaps.append(f"{n} iterations: " + _gaps(select(axis, steps=n)))
        frame = pd.DataFrame(summary)
        figures["length.png"] = line_figure(
            frame, "steps", "value", "method", "", "training iterations (log scale)",
            {"accuracy (%)": "test accuracy (%)",
             "RMS distance from w0": "RMS distance from w0, ||W - W0|| / sqrt(n)"},
            logx=True, panels=["accuracy (%)", "RMS distance from w0"], dodge=0.012)
        lines += ["## Training length", "",
                  f"{split} split, {s['main_examples']} images per class: test accuracy (%), "
                  f"mean ± std over seeds ({s['seeds']} at {s['main_steps']} iterations, "
                  f"{s['axis_seeds']} at the other lengths) / "
                  "mean RMS distance of all inherited kernel weights from the starting point, "
                  "sqrt(sum_l ||W_l - W0_l||^2 / n), after training; alpha as chosen at "
                  f"{s['main_steps']} iterations.", "",
                  table(["method"] + [f"{n} iterations" for n in steps], rows), "",
                  "![lengths](length.png)", "",
                  "Gaps in points: " + "; ".join(gaps) + ".", ""]
    return lines, figures
