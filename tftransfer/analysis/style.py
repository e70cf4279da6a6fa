"""The one look of every figure of the project: a fixed colour, marker and line style per
method, the label of each method, and the helpers that keep ticks readable, legends off the
data and box medians visible. Every ``plot_*`` of :mod:`.plots`, the CPU study's report
figures and the segmentation study's figure draw through this module, so a method has the
same colour in every figure.

Methods (:func:`methods`): the studies' baselines (``scratch``, ``linear_probe``,
``lr_mult``), the penalty schemes of :data:`tftransfer.penalty.SCHEMES` and every method of
:mod:`tftransfer.methods` by its registry name. Each has a fixed colour of a colour-blind-safe
set (Okabe & Ito's eight, then Paul Tol's muted, light and high-contrast sets), so adding a
method never moves the others' colours; the penalty schemes draw solid lines, the registry
methods dashed ones. A name that is none of these (a model name of a tool, a checkpoint) gets
a colour of a spare set chosen by a hash of the name (the same in every run and figure), a
dotted line and an ``x`` marker. ``freeze{k}_{base}`` (the CPU study's freezing runs) takes
the look of ``base``.
"""
import zlib
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import matplotlib.colors as mcolors
import numpy as np
from matplotlib import patheffects, ticker

from tftransfer import methods as methods_lib
from tftransfer.penalty import SCHEMES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.container import ErrorbarContainer
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

BASELINES = ("scratch", "linear_probe", "lr_mult")

# Fixed colours: Okabe & Ito for the paper's methods, Tol's sets for the others.
COLOURS = {
    "scratch": "#999999", "none": "#000000", "l2": "#E69F00", "l2_sp": "#0072B2",
    "l2_sp_fisher": "#56B4E9", "l1_sp": "#009E73", "group_lasso_sp": "#D55E00",
    "group_lasso_sp_fisher": "#CC79A7", "linear_probe": "#999933", "lr_mult": "#882255",
    "bss": "#332288", "co_tuning": "#44AA99", "delta": "#117733", "delta_fm": "#88CCEE",
    "frobenius_pgm": "#AA4499", "group_lasso_sp_layer": "#EE8866", "l2_sp_k": "#77AADD",
    "lp_ft": "#DDCC77", "lwf": "#CC6677", "mars_pgm": "#661100", "spd": "#BBCC33",
    "stochnorm": "#FFAABB", "wise_ft": "#997700",
}
# Spare colours (Tol's light and vibrant sets) for names outside COLOURS, by hash.
SPARE = ("#99DDFF", "#EEDD88", "#44BB99", "#AAAA00", "#EE3377", "#0077BB", "#33BBEE",
         "#EE7733", "#009988", "#CC3311")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")

LABELS = {
    "scratch": "from scratch", "none": "fine-tuning, no penalty", "l2": "L2",
    "l2_sp": "L2-SP", "l2_sp_fisher": "L2-SP-Fisher", "l1_sp": "L1-SP",
    "group_lasso_sp": "GL-SP", "group_lasso_sp_fisher": "GL-SP-Fisher",
    "linear_probe": "linear probe (frozen features)",
    "lr_mult": "fine-tuning, LR x0.01 / x0.1 on lower / upper units",
    "bss": "BSS", "co_tuning": "Co-Tuning", "delta": "DELTA", "delta_fm": "DELTA (feature maps)",
    "frobenius_pgm": "Frobenius PGM", "group_lasso_sp_layer": "GL-SP per layer",
    "l2_sp_k": "L2-SP-k", "lp_ft": "LP-FT", "lwf": "LwF", "mars_pgm": "MARS PGM",
    "spd": "SPD", "stochnorm": "StochNorm", "wise_ft": "WiSE-FT",
}

# Splits of the CPU study (their own colours, Tol's vibrant set: they never share a figure
# with method colours in the same role).
SPLIT_COLOURS = {"far": "#0077BB", "near": "#EE7733", "contained": "#009988",
                 "imagenet": "#CC3311"}


def methods() -> tuple[str, ...]:
    """Every method name the project knows: the baselines, :data:`SCHEMES` and the
    registry's names (:func:`tftransfer.methods.names`), in that order, without repeats."""
    return tuple(dict.fromkeys(BASELINES[:1] + tuple(SCHEMES) + BASELINES[1:]
                               + tuple(methods_lib.names())))


def order(name: str) -> int:
    """Sort key putting known methods in :func:`methods` order, then unknown names (stable
    for a stable sort)."""
    known = methods()
    b = base(name)
    return known.index(b) if b in known else len(known)


def base(name: str) -> str:
    """The method behind ``name``: ``base`` of ``freeze{k}_{base}``, else ``name``."""
    name = str(name)
    if name.startswith("freeze") and "_" in name:
        return name.split("_", 1)[1]
    return name


def label(name: str) -> str:
    """The human label of method ``name`` (``name`` itself when unknown)."""
    name = str(name)
    b = base(name)
    if b != name:
        k = name[len("freeze"):].split("_", 1)[0]
        return f"{LABELS.get(b, b)}, first {k} units frozen"
    return LABELS.get(name, name)


def _spare(name):
    return SPARE[zlib.crc32(name.encode("utf-8")) % len(SPARE)]


def colour(name: str) -> str:
    """The colour (hex) of method ``name``; a spare colour chosen by a hash when unknown."""
    b = base(name)
    return COLOURS.get(b) or _spare(b)


def split_colour(split: str) -> str:
    """The colour of a CPU-study split (a spare colour by hash for another name)."""
    return SPLIT_COLOURS.get(str(split)) or _spare(str(split))


def marker(name: str) -> str:
    """The marker of method ``name`` (``x`` when unknown)."""
    known = methods()
    b = base(name)
    return MARKERS[known.index(b) % len(MARKERS)] if b in known else "x"


def linestyle(name: str) -> str:
    """Solid for the baselines and schemes, dashed for the registry methods, dotted when
    unknown."""
    b = base(name)
    if b in BASELINES or b in SCHEMES:
        return "-"
    return "--" if b in methods() else ":"


def line_style(name: str) -> dict[str, str]:
    """``{color, marker, linestyle, label}`` keyword arguments for ``Axes.plot`` /
    ``Axes.errorbar`` of method ``name``."""
    return dict(color=colour(name), marker=marker(name), linestyle=linestyle(name),
                label=label(name))


def categorical(i: int) -> str:
    """The i-th colour of a colour-blind-safe cycle, for things that are not methods
    (classes, checkpoints, layers)."""
    cycle = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#F0E442", "#56B4E9",
             "#000000") + SPARE
    return cycle[i % len(cycle)]


def contrast(face: Any) -> str:
    """Black or white, whichever reads better on ``face`` (relative luminance > 0.4:
    black): median lines of boxes, text in heatmap cells, error bars on bars."""
    r, g, b = mcolors.to_rgb(face)
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if lum > 0.4 else "#FFFFFF"


def halo(container: "ErrorbarContainer") -> "ErrorbarContainer":
    """A white outline around the lines of an ``Axes.errorbar`` result, so that an error bar
    reads on a dark bar and on the white background alike; returns ``container``."""
    _, caps, bars = container.lines
    for artist in tuple(caps) + tuple(bars):
        artist.set_path_effects([patheffects.withStroke(linewidth=3.5, foreground="white")])
    return container


def is_constant(values: Any) -> bool:
    """True when the finite entries of ``values`` are all equal (or there are none): such a
    grid or panel carries no information and is not drawn."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    return v.size == 0 or bool(np.all(v == v[0]))


def title(*parts: Any) -> str:
    """Panel title from its non-empty parts joined by ': ' (never a leading ': ')."""
    return ": ".join(str(p) for p in parts if p not in (None, ""))


def integer_ticks(axis: "Axis", values: Iterable[float] | None = None) -> None:
    """Integer-only major ticks on ``axis`` (``ax.xaxis``): at ``values`` when given (a
    count such as k with few values), else MaxNLocator(integer=True)."""
    if values is not None:
        axis.set_major_locator(ticker.FixedLocator(sorted({int(v) for v in values})))
    else:
        axis.set_major_locator(ticker.MaxNLocator(integer=True))
    axis.set_major_formatter(ticker.FormatStrFormatter("%d"))
    axis.set_minor_locator(ticker.NullLocator())


def log_ticks(axis: "Axis", values: Iterable[float]) -> None:
    """A log-scale ``axis`` labelled at the data's own ``values`` in plain numbers (300,
    1000, 2000), no minor labels: the default 3x10^2 / 4x10^2 minor labels collide."""
    values = sorted({float(v) for v in values if np.isfinite(v) and v > 0})
    axis.set_major_locator(ticker.FixedLocator(values))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(ticker.NullLocator())
    axis.set_minor_formatter(ticker.NullFormatter())


def log_axis(axis: "Axis", values: Any) -> None:
    """Plain-number labels (0.002, 0.005, 0.01) on a log-scale ``axis`` whose data are
    ``values``: at 1, 2 and 5 per decade over one to three decades, every digit within one
    decade, decades only beyond; minor ticks unlabelled (matplotlib's default labels
    4x10^-3 / 6x10^-3 minor ticks between sparse decade labels)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    span = np.log10(v.max() / v.min()) if v.size else 0.0
    subs = ((1.0,) if span > 3 else (1.0, 2.0, 5.0) if span > 1 else
            (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))
    axis.set_major_locator(ticker.LogLocator(base=10.0, subs=subs, numticks=30))
    axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_locator(ticker.LogLocator(base=10.0, subs="auto", numticks=30))
    axis.set_minor_formatter(ticker.NullFormatter())


def legend_below(fig: "Figure", axes: "Axes | Sequence[Axes]", ncol: int | None = None,
                 title: str | None = None, fontsize: float = 8) -> "Legend | None":
    """One legend for all ``axes`` (labels deduplicated, in order of appearance), outside
    and below them (the figure must use the constrained layout of
    :func:`tftransfer.analysis.plots.new_figure`), so it never covers data; returns it or
    None when nothing is labelled."""
    handles, labels = [], []
    for ax in np.atleast_1d(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
    if not handles:
        return None
    ncol = ncol or min(len(labels), 4)
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol, title=title,
                      fontsize=fontsize, frameon=False)


def style_boxes(boxes: dict[str, list[Any]], faces: Sequence[str]) -> None:
    """Fills the boxes of an ``Axes.boxplot`` / ``Axes.bxp`` result with ``faces`` (one
    colour per box, opaque) and draws each median in the contrasting colour, 2 px wide."""
    for patch, median, face in zip(boxes["boxes"], boxes["medians"], faces):
        patch.set_facecolor(face)
        patch.set_edgecolor("#333333")
        median.set_color(contrast(face))
        median.set_linewidth(2.0)
