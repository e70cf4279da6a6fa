"""Report section listing every claim of the companion papers (papers/000, 001, 003) that a
part checked, each with its verdict (agrees / disagrees / cannot tell) and the numbers from
the CSV files it rests on; the claims come from the part report modules' ``claims(t)``."""
from experiments.cpu_study.report import checkpoints, transferability

# The part report modules that check the companion papers' claims, in the report's order.
CLAIM_MODULES = (checkpoints, transferability)


def claims(t):
    """Every :class:`~experiments.cpu_study.report.common.Claim` of :data:`CLAIM_MODULES`."""
    return [claim for module in CLAIM_MODULES for claim in module.claims(t)]


def section(t):
    """``(Markdown lines, {})``; nothing when no part checked a claim."""
    found = claims(t)
    if not found:
        return [], {}
    counts = {v: sum(c.verdict == v for c in found) for v in ("agrees", "disagrees",
                                                             "cannot tell")}
    return (["## The companion papers' claims", "",
             "Each claim checked on this study's CSV files (\"agrees\": the difference has "
             "the paper's sign and exceeds two standard errors over seeds; \"cannot tell\": "
             "it does not): " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", ""]
            + [c.line() for c in found] + [""]), {}
