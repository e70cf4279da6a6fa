"""Report section on the layer-wise R^2 (Li et al. 2018, Figure 4)."""
from tftransfer.analysis.plots import plot_r2
from experiments.cpu_study.report.common import label


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the R^2 per layer."""
    r2 = t["r2"]
    if r2.empty:
        return [], {}
    lines = ["## Layer-wise R^2 (Figure 4 analog)", "",
             "R^2 of each unit's activations after fine-tuning regressed on the same unit's "
             "activations at the starting point, on target test images (seed 1 of the main "
             "runs); 1 means the layer computes what it computed before fine-tuning.", ""]
    figures = {}
    for split in dict.fromkeys(r2["split"]):
        sub = r2[r2["split"] == split].rename(columns={"method": "model"})
        name = f"r2_{split}.png"
        figures[name] = plot_r2(sub, title=f"R^2 vs starting point, {split} split")
        med = sub.groupby(["model", "layer"], sort=False)["r2"].median().unstack(0)
        layers = list(dict.fromkeys(sub["layer"]))
        med = med.loc[layers]
        parts = []
        for m in med.columns:
            parts.append(f"{label(m)} {med[m].iloc[0]:.3f} (first) / {med[m].iloc[-1]:.3f} "
                         "(last)")
        lines += [f"![r2 {split}]({name})", "",
                  f"- {split}: median R^2 of the first and last layer: " + ", ".join(parts)
                  + ".", ""]
    lines += ["The paper (Figure 4): L2-SP and L2-SP-Fisher keep R^2 close to 1 in most "
              "layers, L2 much lower in the upper layers.", ""]
    return lines, figures
