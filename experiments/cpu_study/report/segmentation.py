"""Report section on the segmentation part: the scene study's reading and results, drawn by
:mod:`experiments.scene_study.report` from the part's ``segmentation_*`` tables (its own
page, with figures and protocol, is ``parts/segmentation/segmentation.md``)."""
import os

from experiments.scene_study import report as scene_report, tables as scene_tables


def section(t):
    """``(Markdown lines, {})``; nothing when the part has not run."""
    directory = os.path.join(t["report_dir"], "parts", "segmentation")
    if not os.path.exists(os.path.join(directory, scene_tables.STUDY)):
        return [], {}
    scene = scene_tables.load(directory)
    results, _ = scene_report.results(scene)
    body = [line.replace("## ", "### ", 1) if line.startswith("## ") else line
            for line in scene_report.reading(scene) + results]
    return (["## Segmentation (Table 4 analog)", "",
             "The scene study as its own part (page with protocol and figures: "
             "[parts/segmentation/segmentation.md](parts/segmentation/segmentation.md)).", ""]
            + body), {}
