"""The study's independent parts: each is one command, at most an hour on 2 cores, resumable
(a finished run under ``--output_dir`` is read back, not retrained), and writes its tables
to ``<report_dir>/parts/<part>/`` (CSV files and ``part.json``: command, settings, wall
time); the report is drawn from every part's files (:func:`experiments.cpu_study.
experiments.load_tables`).

    python -m experiments.cpu_study --part=sources           # then any order:
    python -m experiments.cpu_study --part=main_contained
    python -m experiments.cpu_study --part=main_near,main_far,axes,imagenet

A part needing the source networks or their Fisher files computes them when missing (the
``sources`` part also tabulates them). ``--quick`` runs every part at toy size on the
quick splits (parts of other splits are skipped).
"""
import dataclasses
import importlib
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Part:
    """``phases``: :class:`~experiments.cpu_study.experiments.Study` methods run in order;
    ``module``: a part module (``Config``, ``QUICK``, ``TABLES``, ``CUT``, ``NAME``,
    ``run(study, config)``); ``splits``: the only splits it covers (None: the settings');
    ``cut``: what this CPU-scale part leaves out compared with the paper (a module part:
    its ``CUT``)."""
    name: str
    phases: Tuple[str, ...] = ()
    module: Optional[str] = None
    splits: Optional[Tuple[str, ...]] = None
    cut: str = ""

    def load(self):
        """The part module, or None."""
        return importlib.import_module(self.module) if self.module else None

    def what_is_cut(self):
        """``cut``, or the part module's ``CUT``."""
        return self.cut or (self.load().CUT if self.module else "")

    def covered_splits(self, settings_splits):
        """The settings' splits this part runs on (empty: nothing to do)."""
        if self.splits is None:
            return tuple(settings_splits)
        return tuple(x for x in settings_splits if x in self.splits)


_MAIN_CUT = ("one training length (300 iterations; the paper trains 9000), 20 images per "
             "class, 5 seeds; alpha on a 5-value grid by 5-fold cross-validation, beta fixed "
             "at 0.01 (the paper's choice)")
PARTS = {p.name: p for p in (
    Part("sources", ("sources", "fisher"),
         cut="2 epochs of pretraining on Fashion-MNIST classes instead of ImageNet; the "
             "Fisher on 2000 source images"),
    Part("main_far", ("main", "analyses"), splits=("far",), cut=_MAIN_CUT),
    Part("main_near", ("main", "analyses"), splits=("near",), cut=_MAIN_CUT),
    Part("main_contained", ("main", "analyses"), splits=("contained",), cut=_MAIN_CUT),
    Part("axes", ("figure1", "freeze", "lengths", "sizes"),
         cut="none and L2-SP only (freezing: L2 and L2-SP), 2 seeds; the length sweep on one "
             "split up to 2000 iterations with alpha as chosen at 300; the size sweep on two "
             "splits; Figure 1 and freezing on one split each"),
    Part("imagenet", ("imagenet",),
         cut="the real ImageNet EfficientNet-Lite0 at 64x64 (not 224) for 300 iterations, "
             "alpha on 3 values by 3-fold cross-validation, 5 seeds; no Fisher variants "
             "(they need ImageNet images)"),
    Part("methods_far", module="experiments.cpu_study.methods_grid", splits=("far",)),
    Part("methods_near", module="experiments.cpu_study.methods_grid", splits=("near",)),
    Part("methods_contained", module="experiments.cpu_study.methods_grid",
         splits=("contained",)),
    Part("segmentation", module="experiments.cpu_study.segmentation"),
    Part("checkpoints", module="experiments.cpu_study.checkpoints"),
    Part("transferability", module="experiments.cpu_study.transferability"),
)}


def names():
    return tuple(PARTS)


def check(requested):
    """The requested part names, in :data:`PARTS` order; ValueError naming the unknown."""
    unknown = [p for p in requested if p not in PARTS]
    if unknown:
        raise ValueError(f"--part: unknown {unknown}; choose from {list(PARTS)}.")
    return tuple(p for p in PARTS if p in requested)
