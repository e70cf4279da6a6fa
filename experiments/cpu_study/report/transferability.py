"""Report section of the part ``transferability`` (:mod:`experiments.cpu_study.
transferability`): the claims of Liu et al. 2019, "Towards Understanding the
Transferability of Deep Representations" (papers 000 and 001), fine-tuning from the
pretrained source (``none``) against training from random weights (``scratch``).

Every number is computed from the part's CSV tables, per run (split, method, seed), then
summarised over seeds (mean ± sample std, ddof=1) and compared by the two-SE rule
(:func:`experiments.cpu_study.report.common.compare`):

- ``relative``: ``||W - W0||_2 / ||W0||_2`` of the inherited kernels (weight_map.csv);
- ``distance``: the driver's final ``||W - W0||_F / sqrt(n)`` (transfer_runs.csv);
- ``sharpness`` of a slice ``L(w + t d)`` (init_landscape.csv): the mean of
  ``L(t) - L(0)`` over the points with ``0 < |t| <= RADIUS``; ``lipschitz``: the largest
  ``|L(t_i+1) - L(t_i)| / (t_i+1 - t_i)`` between neighbouring points with
  ``|t| <= RADIUS``; around the solution (``around_solution``) and around the start
  (``around_start``);
- ``layer_spread`` (gradient_stats.csv, step 0): the standard deviation (ddof=0) over the
  kernels of ``log10(||dL/dW_l|| / sqrt(n_l))``, the unevenness of the gradient's scale
  across layers (Figure 7d); ``grad_cv``: over the recorded steps, std (ddof=0) / mean of
  the total gradient norm ``sqrt(sum_l ||dL/dW_l||^2)``;
- ``loss_variation`` (loss_variation.csv): per recorded step ``max_eta L(w - eta g) -
  min_eta L(w - eta g)``, averaged over the steps (Figure 6);
- ``gain``: test accuracy of ``none`` minus that of ``scratch`` with the same seed, in
  points.

A claim checked on several splits (or pairs of splits) agrees when every one agrees,
disagrees when at least one disagrees and none agrees, and is "cannot tell" otherwise.
"""
import numpy as np
import pandas as pd

from experiments.cpu_study.report.common import Claim, compare, fmt, label, stats, table
from experiments.cpu_study.report.common import verdict_of
from experiments.cpu_study.report.figures import lines as line_figure
from tftransfer.analysis import style
from tftransfer.analysis.plots import new_figure

PAPER = "papers/000-001"
RADIUS = 0.5
KEYS = ["split", "method", "seed"]
# Least to most similar to the source (experiments.cpu_study.protocol).
SIMILARITY = ("far", "near", "contained")
METRICS = {"test_accuracy": "test accuracy (%)", "distance": "||W-W0||/sqrt(n)",
           "relative": "||W-W0||/||W0||", "sharpness_solution": "sharpness at solution",
           "lipschitz_start": "Lipschitz at w0", "grad_norm0": "grad norm at w0",
           "layer_spread": "layer spread at w0",
           "loss_variation": "loss variation", "grad_cv": "grad-norm CV"}


def _empty(t):
    return any(name not in t or t[name].empty for name in ("transfer_runs", "weight_map"))


def slice_metrics(land, kind):
    """Table (split, method, seed, sharpness, lipschitz) of the ``kind`` slices."""
    rows = []
    for key, g in land[land["kind"] == kind].groupby(KEYS):
        g = g.sort_values("t")
        t, loss = g["t"].to_numpy(float), g["loss"].to_numpy(float)
        inside = np.abs(t) <= RADIUS + 1e-9
        centre = loss[np.argmin(np.abs(t))]
        ring = inside & (np.abs(t) > 1e-9)
        ti, li = t[inside], loss[inside]
        slopes = np.abs(np.diff(li)) / np.diff(ti)
        rows.append(dict(zip(KEYS, key), sharpness=float(np.mean(loss[ring] - centre)),
                         lipschitz=float(np.max(slopes))))
    return pd.DataFrame(rows, columns=KEYS + ["sharpness", "lipschitz"])


def gradient_metrics(grads):
    """Table (split, method, seed, grad_norm0, layer_spread, grad_cv) of
    gradient_stats.csv (``grad_norm0``: the total gradient norm at the first recorded
    step)."""
    rows = []
    for key, g in grads.groupby(KEYS):
        first = g[g["step"] == g["step"].min()]
        rms = first["grad_norm"].to_numpy(float) / np.sqrt(first["size"].to_numpy(float))
        total = g.groupby("step")["grad_norm"].apply(
            lambda x: float(np.sqrt(np.sum(np.square(x.to_numpy(float))))))
        rows.append(dict(zip(KEYS, key), grad_norm0=float(total.iloc[0]),
                         layer_spread=float(np.std(np.log10(rms))),
                         grad_cv=float(np.std(total) / np.mean(total))))
    return pd.DataFrame(rows, columns=KEYS + ["grad_norm0", "layer_spread", "grad_cv"])


def variation_metrics(variation):
    """Table (split, method, seed, loss_variation) of loss_variation.csv."""
    spread = variation.groupby(KEYS + ["step"])["loss"].agg(lambda x: x.max() - x.min())
    out = spread.groupby(level=KEYS).mean().rename("loss_variation").reset_index()
    return out


def per_run(t):
    """One row per run (split, method, seed) with every metric of the module docstring."""
    runs = t["transfer_runs"][KEYS + ["test_accuracy", "distance"]]
    finals = t["weight_map"][t["weight_map"]["kind"] == "final"][KEYS + ["relative"]]
    out = runs.merge(finals, on=KEYS, how="left")
    land = t.get("init_landscape", pd.DataFrame())
    if not land.empty:
        for kind, name in (("around_solution", "solution"), ("around_start", "start")):
            m = slice_metrics(land, kind).rename(columns={"sharpness": f"sharpness_{name}",
                                                          "lipschitz": f"lipschitz_{name}"})
            out = out.merge(m, on=KEYS, how="left")
    if not t.get("gradient_stats", pd.DataFrame()).empty:
        out = out.merge(gradient_metrics(t["gradient_stats"]), on=KEYS, how="left")
    if not t.get("loss_variation", pd.DataFrame()).empty:
        out = out.merge(variation_metrics(t["loss_variation"]), on=KEYS, how="left")
    return out


def gains(per):
    """Table (split, seed, gain): none's test accuracy minus scratch's, same seed, points."""
    a = per[per["method"] == "none"][["split", "seed", "test_accuracy"]]
    b = per[per["method"] == "scratch"][["split", "seed", "test_accuracy"]]
    both = a.merge(b, on=["split", "seed"], suffixes=("_none", "_scratch"))
    return both.assign(gain=100 * (both["test_accuracy_none"] - both["test_accuracy_scratch"]))


def _stat(frame, column, **where):
    for key, value in where.items():
        frame = frame[frame[key] == value]
    if column not in frame:
        return (np.nan, np.nan, 0)
    return stats(frame, column, scale=1.0)


def _combine(verdicts):
    if verdicts and all(v == "agrees" for v in verdicts):
        return "agrees"
    if "disagrees" in verdicts and "agrees" not in verdicts:
        return "disagrees"
    return "cannot tell"


def _splits(per):
    return [x for x in SIMILARITY if x in set(per["split"])] + sorted(
        set(per["split"]) - set(SIMILARITY))


def _method_claim(per, column, expect, claim, digits=4):
    """``none`` against ``scratch`` on ``column``, per split."""
    verdicts, parts = [], []
    for split in _splits(per):
        a, b = _stat(per, column, split=split, method="none"), _stat(
            per, column, split=split, method="scratch")
        d, se, word = compare(a, b)
        verdicts.append(verdict_of(word, expect))
        parts.append(f"{split}: pretrained {fmt(a, digits)} vs random {fmt(b, digits)} "
                     f"(n = {a[2]}, {b[2]}; d = {d:+.{digits}f}, 2 SE = {2 * se:.{digits}f}, "
                     f"{word})")
    return Claim(PAPER, claim, _combine(verdicts), "; ".join(parts))


def _similarity_claim(frame, column, expect, claim, digits=4):
    """More similar split against less similar one on ``column`` (every ordered pair)."""
    present = [x for x in SIMILARITY if x in set(frame["split"])]
    verdicts, parts = [], []
    for i, less in enumerate(present):
        for more in present[i + 1:]:
            a, b = _stat(frame, column, split=more), _stat(frame, column, split=less)
            d, se, word = compare(a, b)
            verdicts.append(verdict_of(word, expect))
            parts.append(f"{more} {fmt(a, digits)} vs {less} {fmt(b, digits)} (n = {a[2]}, "
                         f"{b[2]}; d = {d:+.{digits}f}, 2 SE = {2 * se:.{digits}f}, {word})")
    if not parts:
        return Claim(PAPER, claim, "cannot tell", "one split only: not measured")
    return Claim(PAPER, claim, _combine(verdicts), "; ".join(parts))


def claims(t):
    """The paper's claims checked on the part's tables (empty when the part did not run)."""
    if _empty(t):
        return []
    per = per_run(t)
    none = per[per["method"] == "none"]
    out = [
        _method_claim(per, "relative", "lower",
                      "Fine-tuned weights stay close to the pretrained starting point, while "
                      "weights trained from a random start move away from it (Figure 4): "
                      "||W - W0|| / ||W0|| lower from pretrained"),
        _similarity_claim(none, "distance", "lower",
                          "Fine-tuning deviates less from the pretrained weights on targets "
                          "more similar to the source: smaller ||W - W0||_F / sqrt(n) "
                          "(Figure 2)"),
        _method_claim(per, "sharpness_solution", "lower",
                      f"Fine-tuning from pretrained weights finds flatter minima (Figures 3, "
                      f"10): smaller mean loss rise within |t| <= {RADIUS} along a "
                      "filter-normalised direction around the solution"),
        _method_claim(per, "lipschitz_start", "lower",
                      f"The loss landscape at a pretrained initialisation is smoother, with "
                      f"better Lipschitzness (Figure 5): smaller largest slope within "
                      f"|t| <= {RADIUS} around w0"),
        _method_claim(per, "loss_variation", "lower",
                      "Pretrained weights stabilise training: smaller variation of the loss "
                      "along the gradient direction over the first iterations (Figure 6)"),
        _method_claim(per, "layer_spread", "lower",
                      "Pretrained weights keep the gradient's magnitude even across layers in "
                      "back-propagation (Figure 7): smaller spread of log10 RMS gradient over "
                      "the kernels at initialisation"),
        _similarity_claim(gains(per), "gain", "higher",
                          "Transferability depends on the similarity of inputs and labels "
                          "(Figure 8): the gain of fine-tuning over training from scratch is "
                          "larger on targets more similar to the source (test accuracy, "
                          "points)", digits=2),
    ]
    return out


def _weight_map_figure(wm):
    fig, ax = new_figure(6.0, 5.6)
    for (kind, method, split), g in wm.groupby(["kind", "method", "split"], sort=False):
        colour = style.split_colour(split) if split != "any" else "#555555"
        face = colour if kind == "final" else "none"
        name = (f"{label(method)}, {split} target" if kind == "final" else
                (f"pretrained start ({split} source)" if method == "none"
                 else "random starts"))
        ax.scatter(g["x"], g["y"], s=60 if kind == "start" else 28, marker=style.marker(
            method), facecolors=face, edgecolors=colour, linewidths=1.4, label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1 (no unit)")
    ax.set_ylabel("t-SNE 2 (no unit)")
    ax.set_title("t-SNE of the inherited kernels: starts (hollow) and solutions (filled)",
                 fontsize=9)
    style.legend_below(fig, ax, ncol=2, fontsize=7)
    return fig


def _mean_std(frame, by, column):
    g = frame.groupby(by)[column]
    return g.mean().to_frame(column).assign(**{column + "_std": g.std(ddof=1).fillna(0.0)}) \
        .reset_index()


def _figures(t, splits):
    panels = [f"{x} split" for x in splits]
    figures = {"transfer_weight_map.png": _weight_map_figure(t["weight_map"])}
    dev = t.get("transfer_deviation", pd.DataFrame())
    if not dev.empty:
        curve = _mean_std(dev, ["split", "method", "step"], "distance")
        figures["transfer_deviation.png"] = line_figure(
            curve.assign(panel=curve["split"] + " split"), "step", "distance", "method",
            "distance from w0", "training iteration", "||W - W0||_F / sqrt(n) (log scale)",
            panels=panels, logy=True)
    land = t.get("init_landscape", pd.DataFrame())
    for kind, name, where in (("around_start", "transfer_landscape_start.png", "w0"),
                              ("around_solution", "transfer_landscape_solution.png",
                               "the solution")):
        sub = land[land["kind"] == kind] if not land.empty else land
        if sub.empty:
            figures[name] = None
            continue
        curve = _mean_std(sub, ["split", "method", "t"], "loss")
        figures[name] = line_figure(
            curve.assign(panel=curve["split"] + " split"), "t", "loss", "method",
            f"loss around {where}", f"t, filter-normalised random direction (0 = {where})",
            "target test cross-entropy (nats)", panels=panels, layered=True)
    grads = t.get("gradient_stats", pd.DataFrame())
    if not grads.empty:
        first = grads[grads["step"] == grads["step"].min()]
        order = {p: i for i, p in enumerate(dict.fromkeys(first["path"]))}
        first = first.assign(layer=first["path"].map(order),
                             rms=first["grad_norm"] / np.sqrt(first["size"]))
        curve = _mean_std(first, ["split", "method", "layer"], "rms")
        figures["transfer_gradients.png"] = line_figure(
            curve.assign(panel=curve["split"] + " split"), "layer", "rms", "method",
            "gradient at initialisation", "kernel (0 = input side, last = new head)",
            "RMS gradient ||dL/dW|| / sqrt(n) (log scale)", panels=panels, integer_x=True,
            logy=True)
    var = t.get("loss_variation", pd.DataFrame())
    if not var.empty:
        spread = var.groupby(KEYS + ["step"])["loss"].agg(lambda x: x.max() - x.min())
        curve = _mean_std(spread.rename("variation").reset_index(),
                          ["split", "method", "step"], "variation")
        figures["transfer_loss_variation.png"] = line_figure(
            curve.assign(panel=curve["split"] + " split"), "step", "variation", "method",
            "loss variation along the gradient", "training iteration",
            "max - min of L(w - eta g) over eta (nats)", panels=panels, integer_x=True)
    return figures


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the part."""
    if _empty(t):
        return [], {}
    per = per_run(t)
    splits = _splits(per)
    seeds = int(per.groupby(["split", "method"]).size().min())
    columns = [c for c in METRICS if c in per]
    rows = []
    for split in splits:
        for method in ("none", "scratch"):
            sub = per[(per["split"] == split) & (per["method"] == method)]
            if sub.empty:
                continue
            cells = [fmt(stats(sub, c, scale=100.0 if c == "test_accuracy" else 1.0),
                         2 if c == "test_accuracy" else 4) for c in columns]
            rows.append([split, label(method)] + cells)
    lines = ["## Transferability (Liu et al. 2019)", "",
             "Fine-tuning from the split's pretrained source (\"" + label("none") +
             "\") against training from random weights (\"" + label("scratch") + "\"), "
             f"mean ± std over {seeds} seeds per cell. Sharpness and Lipschitz constants "
             f"along one filter-normalised random direction within |t| <= {RADIUS}; "
             "gradient statistics on a fixed probe batch over the first iterations. Losses "
             "and gradients are taken in inference mode: batch norm uses its moving "
             "statistics, which at a random start are still mean 0 and variance 1.", "",
             table(["split", "start"] + [METRICS[c] for c in columns], rows), ""]
    figures = _figures(t, splits)
    lines += [f"Figures: mean over {seeds} seeds per split and start, error bars the sample "
              "std; the t-SNE map shows every run.", ""]
    for name, fig in figures.items():
        if fig is not None:
            lines += [f"![{name[:-4]}]({name})", ""]
    wm = t["weight_map"]
    finals = wm[wm["kind"] == "final"]
    own = int((finals["nearest_start"] == finals["start"]).sum())
    verdicts = [c.verdict for c in claims(t)]
    lines += [f"Weight map: {own} of {len(finals)} solutions lie nearest their own "
              "starting point (Euclidean distance over the inherited kernels).", "",
              f"The {len(verdicts)} claims of Liu et al. checked on these numbers ("
              + ", ".join(f"{verdicts.count(v)} {v}" for v in ("agrees", "disagrees",
                                                               "cannot tell"))
              + ") are listed with their numbers under \"The companion papers' claims\".",
              ""]
    return lines, figures
