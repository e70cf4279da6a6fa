"""Report section on forgetting the source task (Li et al. 2018, Table 5)."""
from tftransfer_cli.published import table5_example
from experiments.cpu_study.report.common import fmt, label, select, sentence, stats, table


def section(t):
    """``(Markdown lines, {})`` of the source-task accuracy drops."""
    main = select(t["runs"], experiment="main")
    main = main[~main["source_drop"].isna()] if not main.empty else main
    if main.empty:
        return [], {}
    splits = list(dict.fromkeys(main["split"]))
    methods = [m for m in t["study"]["settings"]["methods"] if m in set(main["method"])]
    rows = []
    for m in methods:
        rows.append([label(m)] + [fmt(stats(select(main, split=x, method=m), "source_drop", 1.0),
                                      1) for x in splits])
    n = int(main.groupby(["split", "method"]).size().min())
    before = {x: 100 * select(main, split=x)["source_accuracy_before"].mean() for x in splits}
    lines = ["## Source-task forgetting (Table 5 analog)", "",
             "Drop of source-task test accuracy (points; lower is better) after fine-tuning, "
             f"mean ± std over {n} seeds, the source classifier put back on the "
             f"fine-tuned backbone, on {t['study']['settings']['source_eval_examples']} source "
             "test images. Starting-point accuracy: " +
             ", ".join(f"{x} {before[x]:.1f}%" for x in splits) + ".", "",
             table(["method"] + splits, rows), ""]
    for x in splits:
        st = {m: stats(select(main, split=x, method=m), "source_drop", 1.0) for m in methods}
        parts = []
        for a, b in (("l2", "l2_sp"), ("l2_sp", "l2_sp_fisher"), ("none", "l2_sp")):
            if a in st and b in st:
                parts.append(sentence(f"{label(a)} drop", st[a], f"{label(b)} drop", st[b]))
        lines.append(f"- **{x}**: " + "; ".join(parts) + ".")
    lines += ["", "The paper (Table 5): L2 loses far more of the source task than L2-SP "
              f"(e.g. {table5_example()}), and L2-SP-Fisher a little less than L2-SP. "
              "Batch-norm statistics are updated on target images in every fine-tuning run "
              "here (as in the recipe), which moves the source task's normalisation for "
              "every method; the linear probe, whose batch norm is frozen, shows the drop "
              "without that effect.", ""]
    return lines, {}
