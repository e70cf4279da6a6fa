"""The CPU study's experiments, in order, each a batch of driver runs on the worker pool.

1. ``sources``: the small ResNet pretrained on each split's source classes.
2. ``fisher``: the exact diagonal Fisher of each source network on 2000 source images.
3. ``main`` (Table 2 analog): every method on every split at ``main_examples`` images per
   class and ``main_steps`` iterations; alpha chosen on the validation split, then
   ``seeds`` runs on all labelled images, tested on every test image.
4. ``sizes``: the same for the other target sizes, with ``axis_methods``, on
   ``size_splits``.
5. ``lengths``: ``axis_methods`` on ``length_split`` trained for each of ``lengths``
   iterations, alpha as chosen at ``main_steps`` (selection at every length did not fit
   the budget), deviation logged through training.
6. ``figure1``: L2-SP's validation accuracy over an alpha x beta grid.
7. ``freeze``: L2 and L2-SP with the first k units frozen (Figure 3).
8. ``imagenet``: the real ImageNet EfficientNet-Lite0 on Fashion-MNIST 5-9.
9. analyses of the main runs: R^2, loss landscape, distances from the starting point.

Model selection (version 2) is k-fold cross-validation on the labelled target images
(``folds``, the driver's ``--cv_folds``/``--cv_fold``): each candidate strength is trained on
k-1 folds and scored on the held-out one, the folds' validation images pooled
(:mod:`tftransfer.training.selection`, the code of ``tftransfer select``); the criterion is
the pooled validation accuracy, ties broken by the lower pooled validation cross-entropy,
then by the smaller alpha. Where the cross-entropy alone prefers another alpha, that alpha's
final runs are trained too and reported as ``main_ce`` (never used to choose). Selection
reads validation records only: :func:`tftransfer.training.selection.pool` refuses any
record whose ``eval_split`` is not ``validation``, and selection configurations always
carve the validation images from the labelled training images.

The study runs as independent parts (:mod:`experiments.cpu_study.parts`), each writing its
tables to ``<report_dir>/parts/<part>/``; :func:`load_tables` concatenates them.
"""
import collections
import dataclasses
import itertools
import json
import os
import time

import numpy as np
import pandas as pd
from absl import logging

from tftransfer.io_utils import atomic_write_json
from tftransfer.training import selection as selection_lib
from experiments.cpu_study import analyses, pool as pool_lib, protocol
from experiments.cpu_study.protocol import SMALL, SPLITS, Target

TABLES = ("sources", "selection", "cv", "runs", "deviation", "r2", "landscape", "fisher")
# The columns of the tables most sections filter on: a table no part wrote is loaded empty
# with these columns, so that a report of one part draws the other sections as "not run".
COLUMNS = {
    "runs": ("experiment", "arm", "split", "examples_per_class", "steps", "method", "alpha",
             "beta", "freeze_units", "seed", "test_accuracy", "num_test",
             "source_accuracy_before", "source_accuracy_after", "source_drop", "distance",
             "train_time_s"),
    "selection": ("experiment", "arm", "split", "examples_per_class", "steps", "method",
                  "alpha", "beta", "fold", "val_accuracy", "val_cross_entropy", "num_val"),
    "cv": ("experiment", "arm", "split", "examples_per_class", "steps", "method", "alpha",
           "beta", "folds", "num_val", "val_accuracy", "val_cross_entropy",
           "chosen_by_accuracy", "chosen_by_cross_entropy"),
}


@dataclasses.dataclass
class Settings:
    """Sizes of the study (the full defaults are sized for 2 cores in under 2 hours)."""
    splits: tuple = ("far", "near", "contained")
    methods: tuple = protocol.DEFAULT_METHODS
    pretrain_epochs: float = 2
    main_examples: int = 20
    sizes: tuple = (10, 20, 100)
    size_splits: tuple = ("far", "near")
    main_steps: int = 300
    lengths: tuple = (300, 1000, 2000)
    seeds: int = 5
    axis_seeds: int = 2
    axis_methods: tuple = ("none", "l2_sp")
    folds: int = 5                       # k of the k-fold cross-validation of every selection
    alpha_grid: tuple = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    figure1_alphas: tuple = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    figure1_betas: tuple = (1e-3, 1e-2, 0.1)
    figure1_split: str = "contained"
    length_split: str = "near"
    freeze_split: str = "contained"
    freeze_units: tuple = (1, 2, 3)       # 4 (all): L2 and L2-SP train identically
    fisher_examples: int = 2000
    imagenet: bool = True
    # Sized from version 1's runs (64x64, 60 steps: ~0.45 s a step on one core): 300 steps
    # ~135 s a run; 3 folds x 3 alphas x 2 tuned + 4 methods x 5 seeds = 38 runs on two
    # workers ~45 min (96x96 would be ~2.3x that, over the part's hour).
    imagenet_size: int = 64
    imagenet_steps: int = 300
    imagenet_examples: int = 20
    imagenet_seeds: int = 5
    imagenet_folds: int = 3
    imagenet_alphas: tuple = (1e-3, 1e-2, 0.1)
    imagenet_methods: tuple = ("none", "l2", "l2_sp", "linear_probe")
    analysis_examples: int = 1000
    test_examples_per_class: int = 0     # 0: every test image of the target classes
    source_eval_examples: int = 1000
    workers: int = 2
    quick: bool = False


QUICK = dict(splits=("far",), sizes=(20,), main_steps=30, lengths=(30, 60), seeds=2,
             axis_seeds=1, folds=2, alpha_grid=(0.01, 0.1), figure1_alphas=(0.1,),
             figure1_betas=(1e-2, 0.1), figure1_split="far", length_split="far",
             freeze_split="far", freeze_units=(2,), fisher_examples=200,
             pretrain_epochs=0.25, imagenet_size=32, imagenet_steps=5, imagenet_seeds=2,
             imagenet_folds=2,
             imagenet_alphas=(0.01,), imagenet_methods=("none", "l2_sp"),
             analysis_examples=200, test_examples_per_class=200, source_eval_examples=200,
             quick=True)


class Study:
    """Runs the experiments of the module docstring; every table row goes to ``self.rows``
    (``runs``, ``selection``, ``sources``, ...), written as CSV by :meth:`write_tables`."""

    def __init__(self, settings, root, data_dir, report_dir, command, part="all", pool=None):
        self.s, self.root, self.data_dir = settings, root, data_dir
        self.report_dir, self.command, self.part = report_dir, command, part
        self.started = time.time()
        self._own_pool = pool is None
        self.pool = pool_lib.Pool(settings.workers) if pool is None else pool
        self.rows = collections.defaultdict(list, {name: [] for name in TABLES})
        self.phase_seconds = {}
        self.trained = self.reused = 0
        self.run_seconds = 0.0
        self.weights, self.fisher_files, self.chosen, self.chosen_ce = {}, {}, {}, {}
        self._kernel_sizes = None

    @classmethod
    def for_part(cls, part, root, data_dir, report_dir, quick=True, workers=1, **settings):
        """A Study of one part (``quick``: the :data:`QUICK` settings), e.g. for a test:
        ``Study.for_part("checkpoints", tmp, data_dir, tmp).run((), [(module, config)])``."""
        values = {**(QUICK if quick else {}), "workers": workers, **settings}
        return cls(Settings(**values), root, data_dir, report_dir,
                   f"python -m experiments.cpu_study --part={part}", part)

    @property
    def quick(self):
        return self.s.quick

    @property
    def part_dir(self):
        """Where this part's tables go: ``<report_dir>/parts/<part>``."""
        return os.path.join(self.report_dir, "parts", self.part)

    def run_all(self, configs, label):
        """Driver records of ``configs`` (StudyRuns) in their order, finished runs read back
        (the part interface of :mod:`experiments.cpu_study.parts`)."""
        return self._run_all(configs, label)

    def source_weights(self, split):
        """The weights file of ``split``'s source network, pretrained first when no finished
        run is there."""
        if split not in self.weights:
            self._source_runs([split])
        return self.weights[split]

    def fisher_file(self, split):
        """The source Fisher file of ``split``, computed first when missing."""
        if split not in self.fisher_files:
            self._fisher_runs([split])
        return self.fisher_files[split]

    @property
    def kernel_sizes(self):
        """``{kernel path: size}`` of the small ResNet's inherited kernels."""
        if self._kernel_sizes is None:
            split = self.s.splits[0]
            first = protocol.target_config(
                Target(SPLITS[split], SMALL, self.s.main_examples, self.s.main_steps,
                       self.source_weights(split)), "none", 0.0, 0, self.root, self.data_dir,
                select=False)
            self._kernel_sizes = self.pool.map(analyses.kernel_sizes, [first])[0]
        return self._kernel_sizes

    # ----------------------------------------------------------------- helpers
    def _run_all(self, configs, label):
        """Runs ``configs`` on the pool, those sharing a compiled model in one worker
        (:func:`pool.by_model`), with a progress line per tenth of the runs; returns their
        records in the order of ``configs``."""
        started, done = time.time(), [0]

        def progress(i, group_records):
            before, done[0] = done[0], done[0] + len(group_records)
            if done[0] * 10 // len(configs) > before * 10 // len(configs):
                logging.info(f"  {label}: {done[0]}/{len(configs)} runs, "
                             f"{time.time() - started:.0f} s")

        records = pool_lib.run_grouped(self.pool, configs, progress)
        trained, reused, seconds = pool_lib.tally(configs, records, self.started)
        self.trained, self.reused = self.trained + trained, self.reused + reused
        self.run_seconds += seconds
        return records

    def _target(self, split, n, steps):
        fisher = (self.fisher_file(split) if any(m in protocol.FISHER_METHODS
                                                 for m in self.s.methods) else None)
        return Target(SPLITS[split], SMALL, n, steps, self.source_weights(split), fisher,
                      self.s.test_examples_per_class, self.s.source_eval_examples)

    def _methods(self, methods):
        return [m for m in methods if m in self.s.methods]

    def _select(self, experiment, cells, methods, alphas, betas=(protocol.BETA,),
                keep_rows=True):
        """k-fold cross-validation (``settings.folds``) of ``methods`` x ``alphas`` x
        ``betas`` in every cell ``(split, n, steps)`` of ``experiment`` (its name in the
        rows): one row per fold in ``selection``, the
        pooled criteria per candidate in ``cv``, and ``self.chosen[(cell, method)]`` (pooled
        accuracy, ties to the lower cross-entropy, then the smaller alpha) and
        ``self.chosen_ce[(cell, method)]`` (pooled cross-entropy alone) at beta = 0.01.
        ``keep_rows=False``: the choices only, no rows (another part's selection, read back)."""
        folds = self.s.folds
        jobs = []
        for cell, method, alpha, beta in itertools.product(cells, methods, alphas, betas):
            for fold in range(folds):
                job = protocol.target_config(self._target(*cell), method, alpha, 0, self.root,
                                             self.data_dir, select=True, beta=beta,
                                             folds=folds, fold=fold)
                jobs.append((cell, method, fold, job))
        records = self._run_all([j[3] for j in jobs], "selection")
        groups = {}
        rows = self.rows if keep_rows else collections.defaultdict(list)
        for (cell, method, fold, job), record in zip(jobs, records):
            penalty = job.config.penalty
            rows["selection"].append(dict(
                experiment=experiment, arm="small_resnet", split=cell[0], examples_per_class=cell[1], steps=cell[2],
                method=method, alpha=penalty.alpha, beta=penalty.beta, fold=fold,
                val_accuracy=record["accuracy"], val_cross_entropy=record["cross_entropy"],
                num_val=record["num_eval"]))
            groups.setdefault((cell, method), []).append(record)
        for (cell, method), group in groups.items():
            self._pool_selection(experiment, "small_resnet", cell, method, group, rows)

    def _pool_selection(self, experiment, arm, cell, method, records, rows=None):
        """Pools ``records`` (validation runs of one cell and method) per (alpha, beta) into
        the ``cv`` rows; the choices at beta = 0.01 go to ``self.chosen`` / ``chosen_ce``."""
        candidates, by_accuracy, by_loss = cross_validated(records)
        if by_accuracy is not None:
            self.chosen[(cell, method)] = by_accuracy.value["alpha"]
            self.chosen_ce[(cell, method)] = by_loss.value["alpha"]
        for c in candidates:
            (self.rows if rows is None else rows)["cv"].append(dict(
                experiment=experiment, arm=arm, split=cell[0], examples_per_class=cell[1],
                steps=cell[2], method=method, alpha=c.value["alpha"], beta=c.value["beta"],
                folds=c.folds, num_val=c.num_eval, val_accuracy=c.accuracy,
                val_cross_entropy=c.cross_entropy, chosen_by_accuracy=c == by_accuracy,
                chosen_by_cross_entropy=c == by_loss))

    def _alpha(self, cell, method):
        """The chosen alpha of ``method`` in ``cell`` (or, for a length not selected on, in
        the same split and size at ``main_steps``); 0 for untuned methods."""
        if not protocol.is_tuned(method):
            return 0.0
        base = protocol.base_method(method)
        if (cell, base) in self.chosen:
            return self.chosen[(cell, base)]
        main = (cell[0], cell[1], self.s.main_steps)
        if (main, base) not in self.chosen:  # the main part's selection, read back
            self._select("main", [main], [base], self.s.alpha_grid, keep_rows=False)
        return self.chosen[(main, base)]

    def _finals(self, cells, methods, seeds, experiment, log_deviation=False,
                save_seed=None, source_eval=False, alphas=None):
        """Final runs (every labelled image, tested) of ``methods`` in ``cells``, seeds 1 ..
        ``seeds``, at the chosen alpha (``alphas``: ``{(cell, method): alpha}`` instead)."""
        jobs = []
        for cell, method, seed in itertools.product(cells, methods, range(1, seeds + 1)):
            alpha = alphas[(cell, method)] if alphas else self._alpha(cell, method)
            logging = log_deviation and method not in ("scratch", "linear_probe")
            job = protocol.target_config(
                self._target(*cell), method, alpha, seed, self.root, self.data_dir,
                select=False, log_every=max(1, cell[2] // 20) if logging else 0,
                deviation_layers=list(self.kernel_sizes) if logging else (),
                save_weights=seed == save_seed, source_eval=source_eval)
            jobs.append((cell, method, job))
        records = self._run_all([j[2] for j in jobs], experiment)
        for (cell, method, job), record in zip(jobs, records):
            curve = analyses.distance_curve(job.config.runtime.output_dir, self.kernel_sizes)
            distance = float(curve["distance"].iloc[-1]) if curve is not None else np.nan
            self.rows["runs"].append(_run_row(experiment, cell[0], method, job.config, record,
                                              distance))
            if curve is not None:
                for step, distance in zip(curve["step"], curve["distance"]):
                    self.rows["deviation"].append(dict(
                        experiment=experiment, split=cell[0], examples_per_class=cell[1],
                        steps=cell[2], method=method, seed=job.config.optim.seed,
                        step=int(step), distance=float(distance)))
        return {(j[0], j[1], j[2].config.optim.seed): j[2] for j in jobs}

    def _phase(self, name, function):
        started = time.time()
        logging.info(f"== {name}")
        function()
        self.phase_seconds[name] = time.time() - started
        self.write_tables()
        logging.info(f"== {name} done in {self.phase_seconds[name]:.0f} s; "
                     f"tables in {self.report_dir}")

    # ------------------------------------------------------------- experiments
    def _source_runs(self, splits):
        """Pretrains (or reads back) the source networks of ``splits``; returns their
        ``{split: (StudyRun, record)}`` and sets ``self.weights``."""
        from tftransfer.data import fashion_mnist

        labels = fashion_mnist.load(self.data_dir)["train"][1]
        configs = {name: protocol.source_config(
            SPLITS[name], self.root, self.s.pretrain_epochs, self.data_dir,
            int(np.isin(labels, SPLITS[name].source_classes).sum()))
            for name in splits}
        records = self._run_all(list(configs.values()), "sources")
        for name, job in configs.items():
            self.weights[name] = os.path.join(job.config.runtime.output_dir,
                                              "model.weights.h5")
        return {name: (job, record) for (name, job), record in zip(configs.items(), records)}

    def _fisher_runs(self, splits):
        """Computes (or finds) the source Fisher files of ``splits``."""
        jobs = []
        for name in splits:
            target = Target(SPLITS[name], SMALL, self.s.main_examples, self.s.main_steps,
                            self.source_weights(name))
            job = protocol.target_config(target, "none", 0.0, 0, self.root, self.data_dir,
                                         select=False, source_eval=True)
            path = os.path.join(self.root, "sources", name, "fisher.npz")
            jobs.append((job, path, self.s.fisher_examples))
        self.pool.map(_fisher_job, jobs)
        for name, (_, path, _) in zip(splits, jobs):
            self.fisher_files[name] = path

    # ------------------------------------------------------------- experiments
    def sources(self):
        for name, (job, record) in self._source_runs(self.s.splits).items():
            self.rows["sources"].append(dict(
                split=name, source_classes=" ".join(map(str, SPLITS[name].source_classes)),
                target_classes=" ".join(map(str, SPLITS[name].target_classes)),
                train_images=record["num_train"], steps=record["steps"],
                source_test_accuracy=record["accuracy"], train_time_s=record["train_time_s"]))

    def fisher(self):
        if not any(m in protocol.FISHER_METHODS for m in self.s.methods):
            return
        self._fisher_runs(self.s.splits)
        from tftransfer import fisher as fisher_lib
        from tftransfer.analysis.fisher_stats import fisher_summary
        for name in self.s.splits:
            values = fisher_lib.load(self.fisher_files[name])
            summary = fisher_summary(values, [p for p in values if p in self.kernel_sizes])
            for row in summary.to_dict("records"):
                self.rows["fisher"].append(dict(split=name, **row))

    def main(self):
        cells = [(split, self.s.main_examples, self.s.main_steps) for split in self.s.splits]
        self._select("main", cells, self._methods(protocol.TUNED), self.s.alpha_grid)
        self.main_configs = self._finals(cells, self._methods(protocol.ALL_METHODS),
                                         self.s.seeds, "main", log_deviation=True,
                                         save_seed=1, source_eval=True)
        # Where the cross-entropy alone prefers another alpha: its test accuracy is reported
        # next to the chosen one (never used to choose).
        other = {key: alpha for key, alpha in self.chosen_ce.items()
                 if key[0] in cells and alpha != self.chosen[key]}
        for cell, method in other:
            self._finals([cell], [method], self.s.seeds, "main_ce", alphas=other)

    def sizes(self):
        cells = [(split, n, self.s.main_steps) for split in self.s.splits
                 if split in self.s.size_splits
                 for n in self.s.sizes if n != self.s.main_examples]
        tuned = [m for m in self._methods(self.s.axis_methods) if protocol.is_tuned(m)]
        self._select("sizes", cells, tuned, self.s.alpha_grid)
        self._finals(cells, self._methods(self.s.axis_methods), self.s.axis_seeds, "sizes")

    def lengths(self):
        cells = [(self.s.length_split, self.s.main_examples, steps)
                 for steps in self.s.lengths if steps != self.s.main_steps]
        self._finals(cells, self._methods(self.s.axis_methods), self.s.axis_seeds,
                     "lengths", log_deviation=True)

    def figure1(self):
        cell = (self.s.figure1_split, self.s.main_examples, self.s.main_steps)
        if "l2_sp" in self.s.methods:
            saved = dict(self.chosen), dict(self.chosen_ce)
            self._select("figure1", [cell], ["l2_sp"], self.s.figure1_alphas,
                         self.s.figure1_betas)
            self.chosen, self.chosen_ce = saved  # the main selection stays in force

    def freeze(self):
        cell = (self.s.freeze_split, self.s.main_examples, self.s.main_steps)
        methods = [f"freeze{k}_{m}" for m in ("l2", "l2_sp") if m in self.s.methods
                   for k in self.s.freeze_units]
        self._finals([cell], methods, self.s.axis_seeds, "freeze")

    def imagenet(self):
        from tftransfer.models.pretrained import efficientnet_lite0_imagenet

        efficientnet_lite0_imagenet()  # converted once, before the workers need it
        arm = protocol.Arm("efficientnet_lite0", self.s.imagenet_size, True,
                           tuple(_efficientnet_units(self.s.imagenet_size)))
        target = Target(protocol.IMAGENET_ARM, arm, self.s.imagenet_examples,
                        self.s.imagenet_steps,
                        test_examples_per_class=self.s.test_examples_per_class)
        tuned = [m for m in self.s.imagenet_methods if protocol.is_tuned(m)]
        folds = self.s.imagenet_folds
        jobs = [(m, protocol.target_config(target, m, a, 0, self.root, self.data_dir,
                                           select=True, folds=folds, fold=f))
                for m in tuned for a in self.s.imagenet_alphas for f in range(folds)]
        records = self._run_all([j[1] for j in jobs], "imagenet selection")
        cell = ("imagenet", target.examples_per_class, target.steps)
        groups = {}
        for (method, job), record in zip(jobs, records):
            self.rows["selection"].append(dict(
                experiment="imagenet", arm=arm.arch, split="imagenet",
                examples_per_class=target.examples_per_class,
                steps=target.steps, method=method, alpha=job.config.penalty.alpha,
                beta=job.config.penalty.beta, fold=job.config.data.cv_fold,
                val_accuracy=record["accuracy"], val_cross_entropy=record["cross_entropy"],
                num_val=record["num_eval"]))
            groups.setdefault(method, []).append(record)
        for method, group in groups.items():
            self._pool_selection("imagenet", arm.arch, cell, method, group)
        finals = [(m, protocol.target_config(target, m, self.chosen.get((cell, m), 0.0), seed,
                                             self.root, self.data_dir, select=False))
                  for m in self.s.imagenet_methods
                  for seed in range(1, self.s.imagenet_seeds + 1)]
        records = self._run_all([f[1] for f in finals], "imagenet")
        for (method, job), record in zip(finals, records):
            self.rows["runs"].append(_run_row("imagenet", "imagenet", method, job.config,
                                              record))

    def analyses(self):
        methods = [m for m in ("none", "l2", "l2_sp", "l2_sp_fisher") if m in self.s.methods]
        jobs = []
        for split in self.s.splits:
            cell = (split, self.s.main_examples, self.s.main_steps)
            configs = {m: self.main_configs[(cell, m, 1)] for m in methods}
            jobs.append((split, configs, self.s.analysis_examples))
        for split, (r2_frame, landscape) in zip(self.s.splits,
                                                self.pool.map(_analysis_job, jobs)):
            self.rows["r2"].extend(r2_frame.assign(split=split).to_dict("records"))
            self.rows["landscape"].extend(landscape.assign(split=split).to_dict("records"))

    def run(self, phases=None, modules=()):
        """The ``phases`` (names of this class's experiment methods; default every one, in
        order of importance) then each ``(module, config)`` of ``modules`` (a part module of
        :mod:`experiments.cpu_study.parts`: ``module.run(self, config)``); the tables are
        rewritten after each."""
        if phases is None:
            phases = PHASES if self.s.imagenet else PHASES[:-1]
        try:
            for name in phases:
                self._phase(name, getattr(self, name))
            for module, config in modules:
                self._phase(module.NAME, lambda: module.run(self, config))
        finally:
            if self._own_pool:
                self.pool.close()

    def write_tables(self):
        """One CSV per non-empty table and ``part.json`` (settings, command, times, how many
        runs this invocation trained and how many it found finished; ``invocations``: the
        same for every invocation of the part so far, oldest first) into :attr:`part_dir`;
        a stale CSV of a table left empty is removed."""
        from tftransfer.io_utils import atomic_write_text

        out_dir = self.part_dir
        os.makedirs(out_dir, exist_ok=True)
        for name, rows in self.rows.items():
            path = os.path.join(out_dir, f"{name}.csv")
            if not rows:
                if os.path.exists(path):
                    os.remove(path)
                continue
            frame = pd.DataFrame(rows)
            if "output_dir" in frame:
                frame = frame.drop(columns=["output_dir"])
            atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g"))
        this = {"command": self.command, "started": self.started,
                "wall_time_s": time.time() - self.started, "phase_seconds": self.phase_seconds,
                "runs_trained": self.trained, "runs_reused": self.reused,
                "run_seconds": self.run_seconds, "cpu_count": os.cpu_count()}
        earlier = [i for i in _invocations(os.path.join(out_dir, "part.json"))
                   if i.get("started") != self.started]
        atomic_write_json(os.path.join(out_dir, "part.json"), {
            "part": self.part, **this, "settings": dataclasses.asdict(self.s),
            "invocations": earlier + [this]})


def _invocations(path):
    """The ``invocations`` of an existing ``part.json`` (one written before they were kept:
    its own fields as the one invocation); [] when there is none."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        info = json.load(f)
    keys = ("command", "started", "wall_time_s", "phase_seconds", "runs_trained",
            "runs_reused", "run_seconds", "cpu_count")
    return info.get("invocations") or [{k: info[k] for k in keys if k in info}]


PHASES = ("sources", "fisher", "main", "analyses", "figure1", "freeze", "lengths", "sizes",
          "imagenet")


def cross_validated(records, beta=protocol.BETA):
    """``(candidates, by_accuracy, by_cross_entropy)`` of validation ``records`` (one per
    fold and candidate): the folds pooled per (alpha, beta)
    (:func:`tftransfer.training.selection.pool`, which refuses a record not evaluated on
    validation images), and among the candidates at ``beta`` the best by pooled accuracy
    (ties: lower pooled cross-entropy, then smaller alpha) and the best by pooled
    cross-entropy (ties: higher accuracy, then smaller alpha); None, None without any."""
    candidates = selection_lib.pool(records, ("alpha", "beta"))
    at_beta = [c for c in candidates if c.value["beta"] == beta]
    if not at_beta:
        return candidates, None, None
    return (candidates, selection_lib.best(at_beta, "accuracy", "other"),
            selection_lib.best(at_beta, "cross_entropy", "other"))


def _run_row(experiment, split, method, config, record, distance=np.nan):
    """One row of the ``runs`` table: a final run's configuration and results."""
    return dict(
        experiment=experiment, arm=config.model.arch, split=split,
        examples_per_class=config.data.examples_per_class, steps=config.optim.train_steps,
        method=method, alpha=config.penalty.alpha, beta=config.penalty.beta,
        freeze_units=config.model.freeze_units, seed=config.optim.seed,
        test_accuracy=record["accuracy"], num_test=record["num_eval"],
        source_accuracy_before=record.get("source_accuracy_before", np.nan),
        source_accuracy_after=record.get("source_accuracy_after", np.nan),
        source_drop=record.get("source_drop", np.nan), distance=distance,
        train_time_s=record["train_time_s"], output_dir=config.runtime.output_dir)


def _fisher_job(job):
    run, path, examples = job
    return analyses.source_fisher(run, path, examples)


def _analysis_job(job):
    split, configs, examples = job
    return (analyses.layer_r2_frame(configs, examples),
            analyses.landscape_frame(configs, examples))


def _efficientnet_units(size):
    from tftransfer.models.build import build

    return build("efficientnet_lite0", 5, "none", input_shape=(size, size, 3)).units


def load_tables(report_dir):
    """The tables of every part under ``<report_dir>/parts/`` (each CSV name concatenated
    over the parts; an empty DataFrame for a table no part wrote) and ``study``: ``parts``
    (``{part: its part.json}``, in the order of :data:`experiments.cpu_study.parts.PARTS`)
    and ``settings`` (the first part's; the parts of one study share them but for
    ``splits``, which is the union); ``v1_runs``: version 1's ``runs.csv`` when the report
    directory keeps it under ``v1/``."""
    from experiments.cpu_study import parts as parts_lib

    root = os.path.join(report_dir, "parts")
    found = sorted(os.listdir(root)) if os.path.isdir(root) else []
    order = list(parts_lib.PARTS)
    found.sort(key=lambda p: order.index(p) if p in order else len(order))
    frames, infos = {}, {}
    for part in found:
        info_path = os.path.join(root, part, "part.json")
        if not os.path.exists(info_path):
            continue
        with open(info_path) as f:
            infos[part] = json.load(f)
        for name in sorted(os.listdir(os.path.join(root, part))):
            path = os.path.join(root, part, name)
            if name.endswith(".csv") and os.path.getsize(path) > 1:
                frames.setdefault(name[:-4], []).append(pd.read_csv(path))
    tables = {name: pd.concat(group, ignore_index=True) for name, group in frames.items()}
    for name in TABLES:
        tables.setdefault(name, pd.DataFrame(columns=list(COLUMNS.get(name, ()))))
    v1 = os.path.join(report_dir, "v1", "runs.csv")  # version 1's final runs, if kept
    tables["v1_runs"] = pd.read_csv(v1) if os.path.exists(v1) else pd.DataFrame()
    settings = dict(next(iter(infos.values()))["settings"]) if infos else {}
    if settings:
        splits = [x for info in infos.values() for x in info["settings"]["splits"]]
        settings["splits"] = [x for x in protocol.SPLITS if x in splits]
    tables["study"] = {"parts": infos, "settings": settings}
    tables["report_dir"] = report_dir
    return tables
