"""Report section on the alpha x beta grid of L2-SP (Li et al. 2018, Figure 1). A grid whose
cells all scored the same is said in a sentence, not drawn: its heatmap would be one colour
(:func:`experiments.cpu_study.report.figures.heatmap` refuses it)."""
from tftransfer.analysis import style
from tftransfer_cli.published import PAPER_FINDINGS
from experiments.cpu_study.report.common import select
from experiments.cpu_study.report.figures import heatmap

FIGURE = "figure1_alpha_beta.png"


def section(t):
    """``(Markdown lines, {file name: Figure or None})`` of the alpha x beta validation grid
    (None: no figure, a stale file of that name is removed)."""
    s = t["study"]["settings"]
    sel = select(t["cv"], experiment="figure1", arm="small_resnet", split=s["figure1_split"], method="l2_sp",
                 examples_per_class=s["main_examples"], steps=s["main_steps"]) \
        if not t["cv"].empty else t["cv"]
    if sel.empty or sel["beta"].nunique() < 2:
        return [], {}
    n_val = int(sel["num_val"].iloc[0])
    paper = (f"The paper found beta = {PAPER_FINDINGS['best_beta']:g} consistently best and "
             "accuracy varying smoothly with alpha and beta; with a validation split this "
             f"small, one image is {100 / n_val:.1f} points.")
    head = ["## Alpha x beta (Figure 1 analog)", ""]
    if style.is_constant(sel["val_accuracy"]) and style.is_constant(sel["val_cross_entropy"]):
        cells = sel.drop_duplicates(["alpha", "beta"])
        return head + [
            f"L2-SP on the {s['figure1_split']} split, validation accuracy ({n_val} images): "
            f"every one of the {len(cells)} cells (alpha "
            f"{', '.join(f'{a:g}' for a in sorted(set(cells['alpha'])))} x beta "
            f"{', '.join(f'{b:g}' for b in sorted(set(cells['beta'])))}) scored "
            f"{100 * sel['val_accuracy'].iloc[0]:.1f}%: the validation split is saturated "
            "and cannot rank the settings, so no heatmap is drawn (it would be one colour). "
            + paper, ""], {FIGURE: None}
    best = sel.sort_values(["val_accuracy", "val_cross_entropy", "alpha", "beta"],
                           ascending=[False, True, True, True]).iloc[0]
    by_beta = sel.groupby("beta")["val_accuracy"].mean()
    return head + [
        f"L2-SP on the {s['figure1_split']} split, pooled validation accuracy over "
        f"{s['folds']} folds ({n_val} images):", "",
        f"![figure 1]({FIGURE})", "",
        f"Best cell alpha = {best['alpha']:g}, beta = {best['beta']:g} "
        f"({100 * best['val_accuracy']:.1f}%, cross-entropy {best['val_cross_entropy']:.3f}; "
        "ties broken by the cross-entropy); mean accuracy over alpha per beta: " +
        ", ".join(f"beta {b:g}: {100 * v:.1f}%" for b, v in by_beta.items()) + ". " + paper,
        ""], {FIGURE: heatmap(sel, "val_cross_entropy" if style.is_constant(sel["val_accuracy"])
                        else "val_accuracy")}
