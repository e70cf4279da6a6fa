"""Report section summarising which of Li et al. 2018's claims this study's numbers agree
with, every claim decided from the tables by the two-SE rule."""
import pandas as pd

from experiments.cpu_study.report.common import compare, select, stats


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


def section(t):
    """``(Markdown lines, {})``: the 'agrees / disagrees' summary."""
    runs, s = t["runs"], t["study"]["settings"]
    main = select(runs, experiment="main")
    if main.empty:
        return [], {}
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
    return lines, {}
