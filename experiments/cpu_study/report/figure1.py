"""Report section on the alpha x beta grid of L2-SP (Li et al. 2018, Figure 1)."""
from experiments.published import PAPER_FINDINGS
from experiments.cpu_study.report.common import select
from experiments.cpu_study.report.figures import heatmap


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the alpha x beta validation grid."""
    s = t["study"]["settings"]
    sel = select(t["selection"], arm="small_resnet", split=s["figure1_split"], method="l2_sp",
                 examples_per_class=s["main_examples"], steps=s["main_steps"]) \
        if not t["selection"].empty else t["selection"]
    if sel.empty or sel["beta"].nunique() < 2:
        return [], {}
    best = sel.sort_values(["val_accuracy", "alpha", "beta"],
                           ascending=[False, True, True]).iloc[0]
    by_beta = sel.groupby("beta")["val_accuracy"].mean()
    return ["## Alpha x beta (Figure 1 analog)", "",
            f"L2-SP on the {s['figure1_split']} split, validation accuracy "
            f"({int(sel['num_val'].iloc[0])} images):", "",
            "![figure 1](figure1_alpha_beta.png)", "",
            f"Best cell alpha = {best['alpha']:g}, beta = {best['beta']:g} "
            f"({100 * best['val_accuracy']:.1f}%); mean over alpha per beta: " +
            ", ".join(f"beta {b:g}: {100 * v:.1f}%" for b, v in by_beta.items()) +
            ". " + (f"Every cell scored {100 * sel['val_accuracy'].iloc[0]:.1f}%: the "
                    "validation split is saturated and cannot rank the settings. "
                    if sel["val_accuracy"].nunique() == 1 else "") +
            f"The paper found beta = {PAPER_FINDINGS['best_beta']:g} consistently best and accuracy varying smoothly "
            "with alpha and beta; with a validation split this small, one image is "
            f"{100 / int(sel['num_val'].iloc[0]):.1f} points.", ""], {"figure1_alpha_beta.png": heatmap(sel)}
