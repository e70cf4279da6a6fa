"""Report section on the main experiment (Li et al. 2018, Table 2) and its model selection."""
from experiments.cpu_study.report.common import (chosen_alpha, compare, fmt, label, select,
                                                 sentence, stats, table)
from experiments.cpu_study.report.figures import bars, selection_curves


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
             "by cross-validation.", "",
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
    selection_lines, selection_figures = _selection_table(t)
    return lines + selection_lines, {**figures, **selection_figures}


def _selection_table(t):
    """The main experiment's cross-validation: pooled validation accuracy and cross-entropy
    of every alpha per split and method (the choice marked), whether the criteria still
    saturate, and the test accuracy of the cross-entropy's choice where it differs."""
    s, cv = t["study"]["settings"], t["cv"]
    if cv.empty:
        return [], {}
    cv = select(cv, experiment="main", arm="small_resnet", examples_per_class=s["main_examples"],
                steps=s["main_steps"], beta=0.01)
    cv = cv[cv["alpha"].isin(s["alpha_grid"])]  # not the extra Figure 1 alphas
    alphas = sorted(set(cv["alpha"]))
    rows, flat_accuracy, flat_both = [], [], []
    for (split, method), group in cv.groupby(["split", "method"], sort=False):
        cells = {}
        for r in group.to_dict("records"):
            mark = (" *" if r["chosen_by_accuracy"] else "") + \
                   (" (ce)" if r["chosen_by_cross_entropy"] else "")
            cells[r["alpha"]] = (f"{100 * r['val_accuracy']:.1f} / "
                                 f"{r['val_cross_entropy']:.3f}{mark}")
        rows.append([split, label(method)] + [cells.get(a, "-") for a in alphas])
        if group["val_accuracy"].nunique() == 1:
            flat_accuracy.append(f"{label(method)} on {split}")
        if len(group.drop_duplicates(["val_accuracy", "val_cross_entropy"])) == 1:
            flat_both.append(f"{label(method)} on {split}")
    n_val, folds = int(cv["num_val"].iloc[0]), int(cv["folds"].iloc[0])
    lines = [f"Cross-validation of the main experiment ({folds} folds, {n_val} validation "
             f"images pooled; one image is {100 / n_val:.1f} points): pooled validation "
             "accuracy (%) / pooled validation cross-entropy per alpha; `*` the choice "
             "(accuracy, ties to the cross-entropy), `(ce)` the cross-entropy's own choice:",
             "", table(["split", "method"] + [f"alpha {a:g}" for a in alphas], rows), "",
             "![selection](selection_curves.png)", ""]
    spreads = [group["val_cross_entropy"].max() - group["val_cross_entropy"].min()
               for _, group in cv.groupby(["split", "method"], sort=False)
               if group["val_accuracy"].nunique() == 1]
    lines.append(
        f"The pooled accuracy is the same at every alpha for {len(flat_accuracy)} of "
        f"{len(rows)} selections" + (f" ({', '.join(flat_accuracy)})" if flat_accuracy
                                     else "") + "; accuracy and cross-entropy together "
        f"are the same at every alpha for {len(flat_both)}" +
        (f" ({', '.join(flat_both)}): there the criteria cannot rank the strengths."
         if flat_both else ": every selection can rank the strengths.") +
        (f" Where the accuracy ties, the cross-entropy decides; its range over the alphas "
         f"there is {min(spreads):.4f} to {max(spreads):.4f} (pooled over the "
         f"{n_val} images); each fold is trained with one seed, so whether such a margin "
         "exceeds the seed-to-seed noise of the criterion is not measured." if spreads
         else ""))
    lines += [""] + _cross_entropy_choice(t)
    return lines, {"selection_curves.png": selection_curves(cv)}


def _cross_entropy_choice(t):
    """Where the pooled cross-entropy alone prefers another alpha: the test accuracy of both
    choices (reported, never used to choose)."""
    runs = t["runs"]
    alt = select(runs, experiment="main_ce") if not runs.empty else runs
    if alt.empty:
        return ["The cross-entropy alone chose the same alpha as the accuracy in every "
                "selection.", ""]
    main = select(runs, experiment="main")
    lines = ["Where the cross-entropy alone prefers another alpha, test accuracy (%) of both "
             "choices (mean ± std over seeds; the cross-entropy's is never used to choose):",
             ""]
    rows = []
    for (split, method), group in alt.groupby(["split", "method"], sort=False):
        chosen = select(main, split=split, method=method)
        rows.append([split, label(method), f"{chosen['alpha'].iloc[0]:g}",
                     fmt(stats(chosen)), f"{group['alpha'].iloc[0]:g}", fmt(stats(group)),
                     compare(stats(group), stats(chosen))[2]])
    lines += [table(["split", "method", "alpha (accuracy)", "test (accuracy's)",
                     "alpha (cross-entropy)", "test (cross-entropy's)",
                     "cross-entropy's vs accuracy's"], rows), ""]
    return lines
