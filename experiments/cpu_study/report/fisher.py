"""Report section on the source networks' diagonal Fisher (Li et al. 2018, Figure 5)."""
import math

from experiments.cpu_study.report.figures import fisher_boxes


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the Fisher summary."""
    fisher = t["fisher"]
    if fisher.empty:
        return [], {}
    spans = []
    for split, sub in fisher.groupby("split", sort=False):
        low, high = sub["q05"].min(), sub["q95"].max()
        top = sub.sort_values("mean").iloc[-1]["path"].replace("/kernel", "")
        spans.append(f"{split}: 5-95% range {low:.2g} to {high:.2g} "
                     f"({math.log10(high / low):.1f} decades), largest mean in {top}")
    return ["## Fisher information (Figure 5 analog)", "",
            "![fisher](fisher.png)", "", "- " + "; ".join(spans) + ".", ""], \
        {"fisher.png": fisher_boxes(fisher)}
