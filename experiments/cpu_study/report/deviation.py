"""Report section on the weight deviation from the starting point during training (Li et
al. 2018, Figure 2's measure)."""
from experiments.cpu_study.report.common import label, select
from experiments.cpu_study.report.figures import lines as line_figure


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the deviation curves."""
    dev = t["deviation"]
    if dev.empty:
        return [], {}
    s = t["study"]["settings"]
    curves = dev.groupby(["experiment", "split", "steps", "method", "step"],
                         as_index=False)["distance"].mean()
    main = select(curves, experiment="main")
    panels = [x for x in s["splits"] if x in set(main["split"])]
    frame = main.assign(panel=main["split"] + " split")
    figures = {"deviation_main.png": line_figure(
        frame, "step", "distance", "method", "distance from w0", "training iteration",
        "RMS distance ||w - w0|| / sqrt(n) (log scale)", panels=[f"{x} split" for x in panels],
        logy=True)}
    longest = select(curves, experiment="lengths")
    lines = ["## Weight deviation during training", "",
             "RMS distance of the inherited kernels from the starting point during the main "
             f"runs (mean over {s['seeds']} seeds), and for the longest runs of the length experiment:",
             "", "![deviation](deviation_main.png)", ""]
    if not longest.empty:
        top = longest[longest["steps"] == longest["steps"].max()]
        panel = f"{int(top['steps'].max())} iterations"
        figures["deviation_long.png"] = line_figure(
            top.assign(panel=panel), "step", "distance", "method",
            f"distance from w0, {s['length_split']} split", "training iteration",
            "RMS distance ||w - w0|| / sqrt(n) (log scale)", panels=[panel], logy=True)
        lines += ["![deviation, long runs](deviation_long.png)", ""]
    final = main[main["step"] == main["steps"]]
    for x in panels:
        sub = final[final["split"] == x].sort_values("distance")
        lines.append(f"- {x}: final distance " + ", ".join(
            f"{label(m)} {d:.4f}" for m, d in zip(sub["method"], sub["distance"])) + ".")
    lines.append("")
    return lines, figures
