"""What every section of the CPU study's report shares: method labels (from
:mod:`tftransfer.analysis.style`), row selection and
the statistics convention.

Statistics: over seeds, the mean and the *sample* standard deviation (ddof=1; 0 for a
single value), ``mean ± std`` with the number of seeds stated in each table's caption.
Comparisons: the difference of two methods' means ``d = m_a - m_b`` (in points) is called
a gain or a loss when ``|d| > 2 SE`` with ``SE = sqrt(s_a^2 / n_a + s_b^2 / n_b)`` (``s``
the sample std, ``n`` the seeds), and "no clear difference" otherwise.
"""
import math

import numpy as np
import pandas as pd

from tftransfer.analysis import style

# The method labels live with the figures' colours, in one place (tftransfer.analysis.style).
label = style.label


def stats(frame, column="test_accuracy", scale=100.0):
    """(mean, sample std (ddof=1), n) of ``column`` x ``scale``, NaNs dropped; std is 0
    for one value."""
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
    """``(d, se, word)`` for stats ``a`` and ``b`` (the two-SE rule of the module docstring)."""
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
    """The rows of ``frame`` whose columns equal ``equal``; an empty frame when ``frame`` has
    no such column (a table no part has written yet)."""
    if any(key not in frame for key in equal):
        return frame.iloc[0:0]
    for key, value in equal.items():
        frame = frame[frame[key] == value]
    return frame


def chosen_alpha(runs, **where):
    sub = select(runs, **where)
    if sub.empty or where.get("method") in ("scratch", "none", "linear_probe", "lr_mult"):
        return "-"
    return f"{sub['alpha'].iloc[0]:g}"


def table(header, rows):
    """A Markdown pipe table (``DataFrame.to_markdown``) of string cells, kept verbatim."""
    frame = pd.DataFrame([[str(c) for c in row] for row in rows], columns=list(header))
    return frame.to_markdown(index=False, disable_numparse=True)


VERDICTS = ("agrees", "disagrees", "cannot tell")


class Claim(tuple):
    """One claim of a source paper checked on the study's CSV files: ``paper`` (e.g.
    ``"papers/003"``), ``claim`` (the paper's statement), ``verdict`` (one of
    :data:`VERDICTS`) and ``numbers`` (the figures it rests on, as text)."""
    __slots__ = ()

    def __new__(cls, paper, claim, verdict, numbers):
        if verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r}: choose one of {VERDICTS}.")
        return super().__new__(cls, (paper, claim, verdict, numbers))

    paper = property(lambda self: self[0])
    claim = property(lambda self: self[1])
    verdict = property(lambda self: self[2])
    numbers = property(lambda self: self[3])

    def line(self):
        return f"- *{self.claim}* ({self.paper}): **{self.verdict}** ({self.numbers})."


def verdict_of(word, expect):
    """The claim verdict of a :func:`compare` word against the expected one ('higher',
    'lower' or 'no clear difference'): agrees when equal, cannot tell when no clear
    difference (or not measured), disagrees otherwise."""
    if word == expect:
        return "agrees"
    if word in ("no clear difference", "not measured"):
        return "cannot tell"
    return "disagrees"
