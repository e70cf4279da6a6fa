"""Report section on the main experiment (Li et al. 2018, Table 2) and its model selection."""
from experiments.cpu_study.report.common import chosen_alpha, fmt, label, select, sentence, stats, table
from experiments.cpu_study.report.figures import bars


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the main table and the selection."""
    runs, s = t["runs"], t["study"]["settings"]
    main = select(runs, experiment="main")
    if main.empty:
        return ["## Main results (Table 2 analog)", "", "Not run.", ""], {}
    splits = [x for x in s["splits"] if x in set(main["split"])]
    methods = [m for m in s["methods"] if m in set(main["method"])]
    rows = []
    for m in methods:
        row = [label(m)]
        for split in splits:
            sub = select(main, split=split, method=m)
            row.append(f"{fmt(stats(sub))} ({chosen_alpha(main, split=split, method=m)})")
        rows.append(row)
    figures = {"main_accuracy.png": bars(main, splits, methods)}
    n = int(main.groupby(["split", "method"]).size().min())
    lines = ["## Main results (Table 2 analog)", "",
             f"Test accuracy (%), mean ± std over {n} seeds, {s['main_examples']} labelled "
             f"images per class, {s['main_steps']} iterations; in brackets the alpha chosen "
             "on the validation split.", "",
             table(["method"] + [f"{x} split" for x in splits], rows), "",
             "![main](main_accuracy.png)", ""]
    lines += ["Comparisons (gain or loss when the difference exceeds two standard errors):", ""]
    for split in splits:
        st = {m: stats(select(main, split=split, method=m)) for m in methods}
        best = max((m for m in methods if st[m][2]), key=lambda m: st[m][0])
        parts = [f"best method {label(best)} ({st[best][0]:.2f})"]
        for a, b in (("l2_sp", "l2"), ("l2_sp", "none"), ("none", "scratch"),
                     ("l2_sp_fisher", "l2_sp"), ("l1_sp", "l2_sp"), ("group_lasso_sp", "l2_sp"),
                     ("group_lasso_sp_fisher", "group_lasso_sp"), ("linear_probe", "none"),
                     ("lr_mult", "none")):
            if a in st and b in st:
                parts.append(sentence(label(a), st[a], label(b), st[b]))
        lines.append(f"- **{split}**: " + "; ".join(parts) + ".")
    lines.append("")
    return lines + _selection_table(t), figures


def _selection_table(t):
    """Validation accuracy of every alpha of the main experiment's selection."""
    s, sel = t["study"]["settings"], t["selection"]
    if sel.empty:
        return []
    sel = select(sel, arm="small_resnet", examples_per_class=s["main_examples"],
                 steps=s["main_steps"], beta=0.01)
    sel = sel[sel["alpha"].isin(s["alpha_grid"])]  # not the extra Figure 1 alphas
    alphas = sorted(set(sel["alpha"]))
    rows, saturated = [], []
    for (split, method), group in sel.groupby(["split", "method"], sort=False):
        scores = dict(zip(group["alpha"], group["val_accuracy"]))
        rows.append([split, label(method)] + [f"{100 * scores[a]:.1f}" if a in scores else "-"
                                              for a in alphas])
        if group["val_accuracy"].nunique() == 1:
            saturated.append(f"{label(method)} on {split}")
    n_val = int(sel["num_val"].iloc[0])
    lines = ["Validation accuracy (%) of each alpha in the main experiment's selection "
             f"({n_val} validation images; one image is {100 / n_val:.1f} points):", "",
             table(["split", "method"] + [f"alpha {a:g}" for a in alphas], rows), ""]
    if saturated:
        lines += [f"Every alpha scored the same for {len(saturated)} of {len(rows)} "
                  "selections (" + ", ".join(saturated) + "): there the validation split "
                  "cannot tell the strengths apart and the rule picks the smallest alpha, "
                  "which makes the penalty nearly inactive.", ""]
    return lines
