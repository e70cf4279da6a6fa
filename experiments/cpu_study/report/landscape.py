"""Report section on the loss landscape: the straight path from the starting point to each
solution and filter-normalised random slices."""
from experiments.cpu_study.report.common import label
from experiments.cpu_study.report.figures import lines as line_figure

# The kinds of slice of landscape.csv, their panel titles and what t is on each.
PANELS = {"interpolation": "straight path w0 to solution",
          "around_solution": "around the solution",
          "around_start": "around w0 (shared by all methods)"}
XLABELS = {PANELS["interpolation"]: "interpolation t (0 = start w0, 1 = fine-tuned)",
           PANELS["around_solution"]: "t, random filter-normalised direction (0 = solution)",
           PANELS["around_start"]: "t, random filter-normalised direction (0 = w0)"}


def section(t):
    """``(Markdown lines, {file name: Figure})`` of the landscape slices."""
    land = t["landscape"]
    if land.empty:
        return [], {}
    lines = ["## Loss landscape", "",
             "Target test loss on the straight path from the starting point (t = 0) to each "
             "solution (t = 1), and along one filter-normalised random direction around the "
             "solution and around the starting point (t in [-1, 1]):", ""]
    figures = {}
    for split in dict.fromkeys(land["split"]):
        sub = land[land["split"] == split]
        frame = sub.assign(panel=sub["kind"])
        name = f"landscape_{split}.png"
        figures[name] = line_figure(
            frame.replace({"panel": PANELS}), "t", "loss", "method", f"{split} split",
            XLABELS, "target test cross-entropy (nats)", panels=list(PANELS.values()),
            layered=True)
        path = sub[sub["kind"] == "interpolation"]
        parts = []
        for m, g in path.groupby("method", sort=False):
            inner = g[(g["t"] >= 0) & (g["t"] <= 1)]
            end = inner[inner["t"] == inner["t"].max()]["loss"].iloc[0]
            parts.append(f"{label(m)}: loss {inner['loss'].iloc[0]:.2f} at w0, "
                         f"{end:.2f} at the solution, max {inner['loss'].max():.2f} on the path")
        lines += [f"![landscape {split}]({name})", "", f"- {split}: " + "; ".join(parts) + ".",
                  ""]
    return lines, figures
