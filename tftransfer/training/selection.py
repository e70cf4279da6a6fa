"""Model selection on validation images only: pool the folds, choose, tabulate.

Li et al. 2018, Section 4.1 choose the strengths alpha (and beta) by cross-validation on
the target training images, never on the test set. Here a candidate is one value of the
chosen flags (e.g. ``{"alpha": 0.01}``); its validation records (driver results records,
``eval_split == "validation"``, one per fold) are pooled:

- ``accuracy``: every validation image of every fold counted once, ``sum_f correct_f /
  sum_f n_f`` (``correct_f = round(accuracy_f * n_f)``, ``n_f`` the record's
  ``num_eval``), the paper's pooled cross-validation accuracy;
- ``cross_entropy``: the mean over the same images of ``-log p[label]``, ``sum_f
  cross_entropy_f * n_f / sum_f n_f``.

:func:`best` picks on ``criterion`` (``"accuracy"``: highest; ``"cross_entropy"``:
lowest; the two can prefer different strengths, so the table shows both); ties go to the
other measure when ``tie_break="other"`` (accuracy ties to the lower cross-entropy, as
issue 16 asks of tftransfer select), and remaining ties to the smaller values (the weaker
penalty). ``tie_break="smaller"`` skips the other measure: the demo's and the CPU study's
rule (:func:`choose`). A record evaluated on anything but the validation split is refused.
"""
import dataclasses
from fractions import Fraction

CRITERIA = ("accuracy", "cross_entropy")
TIE_BREAKS = ("other", "smaller")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """Pooled validation measures of one value of the chosen flags (module docstring)."""
    values: tuple        # ((flag, value), ...) in the order of the chosen flags
    folds: int           # records pooled
    num_eval: object     # validation images pooled (None: records without counts)
    accuracy: float
    cross_entropy: object  # None when a record has no cross-entropy
    exact_accuracy: Fraction = dataclasses.field(compare=False, repr=False, default=None)

    @property
    def value(self):
        """``{flag: value}``."""
        return dict(self.values)


def check_validation(records):
    """Raises ValueError when there is no record or one was not evaluated on the
    validation split (hyper-parameters are never chosen on test images)."""
    if not records:
        raise ValueError("model selection got no records.")
    for record in records:
        if record.get("eval_split") != "validation":
            raise ValueError(
                f"model selection got a record evaluated on {record.get('eval_split')!r} "
                f"({record.get('output_dir') or record.get('flags', {}).get('output_dir')}); only validation accuracies may choose "
                "hyper-parameters: run with --validation_fraction or --cv_folds.")


def _pooled(values, group):
    counts = [r.get("num_eval") for r in group]
    losses = [r.get("cross_entropy") for r in group]
    if None in counts:
        if len(group) > 1:
            raise ValueError(f"{dict(values)}: {len(group)} records to pool but some have "
                             "no num_eval (the count of validation images).")
        exact, num_eval = Fraction(group[0]["accuracy"]), None
    else:
        correct = sum(round(r["accuracy"] * n) for r, n in zip(group, counts))
        num_eval = sum(counts)
        exact = Fraction(correct, max(num_eval, 1))
    loss = None
    if None not in losses:
        weights = counts if num_eval else [1] * len(group)
        loss = sum(l * w for l, w in zip(losses, weights)) / max(sum(weights), 1)
    return Candidate(values, len(group), num_eval, float(exact), loss, exact)


def pool(records, keys=("alpha",)):
    """One :class:`Candidate` per distinct value of the flags ``keys`` among ``records``
    (in order of first appearance), its folds pooled (module docstring)."""
    check_validation(records)
    groups = {}
    for record in records:
        values = tuple((k, record["flags"][k]) for k in keys)
        groups.setdefault(values, []).append(record)
    return [_pooled(values, group) for values, group in groups.items()]


def _rank(candidate, criterion, tie_break):
    """Sort key, smallest best."""
    loss = candidate.cross_entropy
    if tie_break == "other" and loss is None:
        raise ValueError(f"{candidate.value}: the tie-break needs each record's "
                         "cross_entropy (results.json of this driver has it).")
    smaller = tuple(v for _, v in candidate.values)
    if criterion == "accuracy":
        return (-candidate.exact_accuracy,) + ((loss,) if tie_break == "other" else ()) + smaller
    if loss is None:
        raise ValueError(f"--criterion=cross_entropy needs each record's cross_entropy; "
                         f"{candidate.value} has none.")
    return (loss,) + ((-candidate.exact_accuracy,) if tie_break == "other" else ()) + smaller


def best(candidates, criterion="accuracy", tie_break="other"):
    """The best :class:`Candidate` under ``criterion`` and ``tie_break`` (module docstring)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion={criterion!r}: choose one of {list(CRITERIA)}.")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break={tie_break!r}: choose one of {list(TIE_BREAKS)}.")
    if not candidates:
        raise ValueError("model selection got no candidates.")
    return min(candidates, key=lambda c: _rank(c, criterion, tie_break))


def choose(records, key="alpha", criterion="accuracy", tie_break="smaller"):
    """The ``key`` flag of the best candidate among ``records``; by default the demo's
    rule: best validation accuracy, ties to the smaller value (the weaker penalty)."""
    return best(pool(records, (key,)), criterion, tie_break).value[key]


def table(candidates, chosen=None, criterion="accuracy"):
    """The selection table as text lines: one row per candidate with its folds, pooled
    validation images, accuracy and cross-entropy; ``chosen`` marked with ``*``."""
    keys = [k for k, _ in candidates[0].values] if candidates else []
    header = keys + ["folds", "val images", "val accuracy", "val cross-entropy", ""]
    rows = []
    for c in candidates:
        loss = "-" if c.cross_entropy is None else f"{c.cross_entropy:.4f}"
        rows.append([f"{v:g}" if isinstance(v, float) else str(v) for _, v in c.values]
                    + [str(c.folds), str(c.num_eval or "-"), f"{c.accuracy:.4f}", loss,
                       "*" if c == chosen else ""])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda row: "  ".join(cell.rjust(w) for cell, w in zip(row, widths)).rstrip()
    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
    if chosen is not None:
        lines.append(f"* chosen on the pooled validation {criterion.replace('_', '-')}")
    return lines
