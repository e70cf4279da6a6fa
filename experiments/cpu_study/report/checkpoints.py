"""Report section of part ``checkpoints``: feature extraction (FE) and fine-tuning (FT)
from source networks at several pretraining stages, and the spectrum of their penultimate
features (papers/003; papers/000, Figure 9). Tables from :mod:`experiments.cpu_study.
checkpoints`: ``checkpoints``, ``checkpoint_selection``, ``checkpoint_spectrum``.

Its claims (:func:`claims`) are listed by :mod:`.companions`; the section counts them.

Definitions (all computed from the CSV numbers):

- FE = ``linear_probe``, FT = ``none`` (plain fine-tuning) and ``l2_sp``; mean ± sample std
  over seeds (:func:`.common.stats`), in points.
- Transfer gain of a checkpoint: ``FT(checkpoint) - FT(scratch)``, with
  ``SE = sqrt(s_a^2/n_a + s_b^2/n_b)`` (:func:`.common.compare`).
- Top-k share of a spectrum: ``sum_{i<k} sigma_i^2 / sum_i sigma_i^2`` (the share of the
  centred features' energy in the ``k`` = :data:`TOP` largest components; 4 = the
  dimension spanned by the between-class differences of 5 target classes); its spread is
  over the disjoint image subsets (``subset`` >= 1), its value over every image
  (``subset`` 0).
- "Best intermediate": the checkpoint before the last with the highest mean; comparing it
  with the last by the two-SE rule does not correct for having picked the maximum of
  several means (a bias towards "higher"), which the claims' numbers state.
"""
import math

import numpy as np
import pandas as pd

from experiments.cpu_study.report.common import (Claim, compare, fmt, label, select,
                                                 sentence, stats, table, verdict_of)
from experiments.cpu_study.report.figures import lines as line_figure
from tftransfer.analysis import style
from tftransfer.analysis.plots import plot_spectrum

TOP = 4
FE, FT = "linear_probe", ("none", "l2_sp")
PAPER_FE = "papers/003"
PAPER_GAIN = "papers/000"


def _table(t, name):
    frame = t.get(name)
    return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()


def _epochs(frame):
    """The pretraining lengths of the checkpoints (scratch / init rows excluded), sorted."""
    return sorted(float(e) for e in set(frame["epochs"]) if e > 0)


def _ep(e):
    return "init" if e == 0 else f"{e:g} ep"


def _acc(frame, e, method):
    return stats(select(frame, epochs=e, method=method))


def _source(frame, e):
    """Source test accuracy (%) of checkpoint ``e`` (one pretraining run)."""
    values = select(frame, epochs=e)["source_accuracy"].dropna()
    return 100 * float(values.iloc[0]) if len(values) else math.nan


def top_share(values, k=TOP):
    """``sum_{i<k} s_i^2 / sum_i s_i^2`` of descending singular values ``values``, in %."""
    energy = np.asarray(values, np.float64) ** 2
    return 100 * float(energy[:k].sum() / energy.sum()) if energy.sum() > 0 else math.nan


def share_stats(spectrum, e):
    """``(all-image share, (mean, std, n) over the subsets)`` of checkpoint ``e``."""
    sub = select(spectrum, epochs=e)
    whole = top_share(select(sub, subset=0).sort_values("index")["singular_value"])
    parts = pd.DataFrame({"share": [
        top_share(g.sort_values("index")["singular_value"])
        for s, g in sub.groupby("subset") if s > 0]})
    return whole, stats(parts, "share", 1.0) if len(parts) else (math.nan, math.nan, 0)


def _best_before_last(frame, epochs, method):
    """``(epochs, stats)`` of the checkpoint before the last with the highest mean."""
    candidates = [(e, _acc(frame, e, method)) for e in epochs[:-1]]
    candidates = [c for c in candidates if c[1][2]]
    return max(candidates, key=lambda c: c[1][0]) if candidates else (None, None)


def _peak_claim(frame, epochs, method, paper, claim, split, baseline=None):
    """Agrees when the best checkpoint before the last beats the last (two-SE rule);
    ``baseline``: a method (scratch) whose mean the numbers subtract (the gains)."""
    if len(epochs) < 2:
        return Claim(paper, claim, "cannot tell", f"{split}: one checkpoint only")
    best_e, best = _best_before_last(frame, epochs, method)
    last = _acc(frame, epochs[-1], method)
    if best is None:
        return Claim(paper, claim, "cannot tell", f"{split}: {method} not measured")
    _, _, word = compare(best, last)
    curve = ", ".join(f"{_ep(e)} {_acc(frame, e, method)[0]:.2f}" for e in epochs)
    if baseline is not None:
        base = stats(select(frame, method=baseline))
        curve += f"; gains over {baseline}: " + ", ".join(
            f"{_ep(e)} {_gain(_acc(frame, e, method), base)}" for e in epochs)
    return Claim(paper, claim, verdict_of(word, "higher"),
                 f"{split}, {label(method)}: "
                 f"{sentence(f'best before the last ({_ep(best_e)})', best, f'last ({_ep(epochs[-1])})', last)}; "
                 f"means {curve}; n = {last[2]} seeds; the best of {len(epochs) - 1} earlier "
                 "checkpoints, not corrected for the pick")


def grows_verdict(points):
    """Verdict of "accuracy grows with source accuracy" for ``points`` =
    ``[(source accuracy, stats)]``: disagrees when a checkpoint of higher source accuracy
    is clearly lower (two-SE rule) than one of lower source accuracy; agrees when there is
    no such drop and the highest-source checkpoint is clearly higher than the lowest;
    cannot tell otherwise."""
    points = sorted(points, key=lambda p: p[0])
    if len(points) < 2:
        return "cannot tell"
    for i, (_, low) in enumerate(points):
        for _, high in points[i + 1:]:
            if compare(high, low)[2] == "lower":
                return "disagrees"
    return verdict_of(compare(points[-1][1], points[0][1])[2], "higher")


def _grows_claim(frame, epochs, method, split):
    points = [(_source(frame, e), _acc(frame, e, method)) for e in epochs]
    points = [p for p in points if p[1][2] and not math.isnan(p[0])]
    numbers = ", ".join(f"source {s:.2f}% -> {st[0]:.2f} ± {st[1]:.2f}"
                        for s, st in sorted(points, key=lambda p: p[0]))
    return Claim(PAPER_FE, f"{label(method)} accuracy grows with the source accuracy",
                 grows_verdict(points),
                 f"{split}: {numbers} (n = {min((p[1][2] for p in points), default=0)} seeds; "
                 "no clear drop between any two checkpoints and the highest-source one "
                 "clearly above the lowest)")


def _spectrum_claim(spectrum, epochs, split):
    claim = (f"pretraining first learns the large-singular-value components: the top-{TOP} "
             "share of the target features' energy is larger at the first checkpoint than "
             "at the last (the residual components come later)")
    if len(epochs) < 2 or spectrum.empty:
        return Claim(PAPER_FE, claim, "cannot tell", f"{split}: not measured")
    (w0, first), (w1, last) = share_stats(spectrum, epochs[0]), share_stats(spectrum,
                                                                             epochs[-1])
    init = share_stats(spectrum, 0.0)[0] if not select(spectrum, epochs=0.0).empty \
        else math.nan
    word = compare(first, last)[2]
    return Claim(PAPER_FE, claim, verdict_of(word, "higher"),
                 f"{split}: top-{TOP} share {_ep(epochs[0])} {first[0]:.2f} ± {first[1]:.2f}"
                 f" vs {_ep(epochs[-1])} {last[0]:.2f} ± {last[1]:.2f} % over {first[2]} image "
                 f"subsets (all images: {w0:.2f} vs {w1:.2f}; random init {init:.2f})")


def claims(t):
    ck, spectrum = _table(t, "checkpoints"), _table(t, "checkpoint_spectrum")
    if ck.empty:
        return []
    out = []
    for split in dict.fromkeys(ck["split"]):
        sub = select(ck, split=split)
        epochs = _epochs(sub)
        spec = select(spectrum, split=split) if not spectrum.empty else spectrum
        fe = _peak_claim(sub, epochs, FE, PAPER_FE,
                         "a checkpoint before the last is a better feature extractor "
                         "(linear probe) than the fully pretrained network", split)
        ft = [(e, _acc(sub, e, "none")) for e in epochs]
        ft = [x for x in ft if x[1][2]]
        if ft:
            best = max(ft, key=lambda x: x[1][0])
            fe = Claim(fe.paper, fe.claim, fe.verdict, f"{fe.numbers}; the best fine-tuning "
                       f"start (highest mean, plain fine-tuning): {_ep(best[0])}")
        out.append(fe)
        for method in FT:
            if not select(sub, method=method).empty:
                out.append(_grows_claim(sub, epochs, method, split))
        out.append(_spectrum_claim(spec, epochs, split))
        out.append(_peak_claim(sub, epochs, "none", PAPER_GAIN,
                               "the fine-tuning gain over scratch grows in the early "
                               "pretraining epochs and falls afterwards (Figure 9): a "
                               "checkpoint before the last fine-tunes better than the last",
                               split, baseline="scratch"))
    return out


def _gain(a, b):
    """``+d (2 SE = x)`` of stats ``a`` minus ``b``."""
    if not a[2] or not b[2]:
        return "-"
    d, se, _ = compare(a, b)
    return f"{d:+.2f} (2 SE {2 * se:.2f})"


def _alpha_note(sub, sel):
    if select(sub, method="l2_sp").empty:
        return "L2-SP not run."
    if sel.empty:
        return "L2-SP at the one alpha given (no selection)."
    grid = ", ".join(f"{a:g}" for a in sorted(set(sel["alpha"])))
    return f"L2-SP's alpha chosen per checkpoint on the validation split (grid {grid})."


def _split_lines(sub, spec, sel, split):
    epochs = _epochs(sub)
    scratch = stats(select(sub, method="scratch"))
    rows = []
    for e in epochs:
        none, l2sp = _acc(sub, e, "none"), _acc(sub, e, "l2_sp")
        alpha = select(sub, epochs=e, method="l2_sp")["alpha"]
        rows.append([_ep(e), f"{_source(sub, e):.2f}", fmt(_acc(sub, e, FE)), fmt(none),
                     _gain(none, scratch),
                     fmt(l2sp) + (f" (α {alpha.iloc[0]:g})" if len(alpha) else ""),
                     _gain(l2sp, scratch)])
    rows.append(["scratch", "-", "-", fmt(scratch), "-", "-", "-"])
    n = int(sub.groupby(["epochs", "method"]).size().min())
    out = [f"### {split} split", "",
           f"Target test accuracy (%), mean ± std over {n} seeds (seeds 1..{n}); source "
           "accuracy: the checkpoint's source test accuracy (%, one pretraining run); gains "
           "in points over fine-tuning from scratch. " + _alpha_note(sub, sel), "",
           table(["checkpoint", "source acc.", "FE (linear probe)", "FT (none)",
                  "FT gain", "L2-SP", "L2-SP gain"], rows), ""]
    if not spec.empty:
        srows = []
        for e in [0.0] + epochs:
            if select(spec, epochs=e).empty:
                continue
            whole, part = share_stats(spec, e)
            s = select(spec, epochs=e, subset=0).sort_values("index")["singular_value"]
            srows.append([_ep(e), f"{whole:.2f}", fmt(part),
                          f"{s.iloc[1] / s.iloc[0]:.3f}" if len(s) > 1 else "-"])
        count = int(spec["subset"].max())
        images = int(select(spec, subset=0)["num_images"].iloc[0])
        out += [f"Spectrum of the centred `avg_pool` features of {images} target test images "
                f"(before fine-tuning): top-{TOP} energy share (%) on all of them and mean "
                f"± std over {count} disjoint class-balanced subsets, and sigma_2 / sigma_1 "
                "on all ('init': the random initialisation of scratch, seed 1).", "",
                table(["checkpoint", f"top-{TOP} share", f"top-{TOP} share (subsets)",
                       "sigma_2 / sigma_1"], srows), "",
                f"![spectrum {split}](checkpoints_spectrum_{split}.png)", ""]
    return out


def _accuracy_frame(ck, splits):
    rows = []
    for split in splits:
        sub = select(ck, split=split)
        epochs = _epochs(sub)
        for method in (FE,) + FT + ("scratch",):
            for e in epochs:
                st = stats(select(sub, method=method)) if method == "scratch" else \
                    _acc(sub, e, method)
                if st[2]:
                    rows.append(dict(panel=split, method=method, epochs=e, acc=st[0],
                                     acc_std=st[1]))
    return pd.DataFrame(rows)


def _methods_text(ck):
    names = {FE: "feature extraction (FE, the linear probe: frozen backbone and batch norm, "
                 "new head)", "none": "plain fine-tuning (FT)", "l2_sp": "L2-SP"}
    return ", ".join(text for m, text in names.items() if not select(ck, method=m).empty)


def _accuracy_figure(ck, splits):
    """FE, FT, L2-SP and scratch (flat) against pretraining epochs, one panel per split;
    the legend in two columns (four long labels overflow one panel's width)."""
    fig = line_figure(_accuracy_frame(ck, splits), "epochs", "acc", "method",
                      "target accuracy vs pretraining", "source pretraining (epochs, log "
                      "scale)", "target test accuracy (%)", logx=True, panels=splits)
    for legend in list(fig.legends):
        legend.remove()
    style.legend_below(fig, fig.axes, ncol=2, title="method (error bars: std over seeds)")
    return fig


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the checkpoints part."""
    ck = _table(t, "checkpoints")
    if ck.empty:
        return [], {}
    spectrum, selection = _table(t, "checkpoint_spectrum"), _table(t, "checkpoint_selection")
    splits = list(dict.fromkeys(ck["split"]))
    lines = ["## Transfer across pretraining checkpoints (papers/003; papers/000, Figure 9)",
             "",
             "The small ResNet pretrained on each split's source classes for each length "
             "(epochs) of one seeded schedule: every shorter run is the first steps of the "
             "longest (same seed, data order and learning rate; only the longest reaches the "
             "decay step). From each checkpoint: " + _methods_text(ck) + "; from scratch "
             "once. 'Better' only beyond two standard errors.", "",
             "![accuracy vs pretraining](checkpoints_accuracy.png)", ""]
    figures = {"checkpoints_accuracy.png": _accuracy_figure(ck, splits)}
    for split in splits:
        spec = select(spectrum, split=split) if not spectrum.empty else spectrum
        sel = select(selection, split=split) if not selection.empty else selection
        lines += _split_lines(select(ck, split=split), spec, sel, split)
        name = f"checkpoints_spectrum_{split}.png"
        if spec.empty:
            figures[name] = None
        else:
            whole = select(spec, subset=0).copy()
            whole["checkpoint"] = [_ep(e) for e in whole["epochs"]]
            figures[name] = plot_spectrum(whole.sort_values(["epochs", "index"]))
    found = claims(t)
    counts = ", ".join(f"{sum(c.verdict == v for c in found)} {v}"
                       for v in ("agrees", "disagrees", "cannot tell"))
    lines += [f"The claims these numbers decide ({counts}) are listed, with their numbers, "
              "in \"The companion papers' claims\".", ""]
    return lines, figures
