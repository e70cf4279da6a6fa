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

Model selection reads validation accuracies only: :func:`choose` refuses any record whose
``eval_split`` is not ``validation``, and selection configurations always carve the
validation split from the labelled training images.
"""
import dataclasses
import itertools
import json
import os
import time

import numpy as np
import pandas as pd
from absl import logging

from tftransfer.io_utils import atomic_write_json
from experiments.cpu_study import analyses, pool as pool_lib, protocol
from tftransfer.training.selection import choose
from experiments.cpu_study.protocol import SMALL, SPLITS, Target


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
    alpha_grid: tuple = (1e-4, 1e-3, 1e-2, 0.1)
    figure1_alphas: tuple = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    figure1_betas: tuple = (1e-3, 1e-2, 0.1)
    figure1_split: str = "contained"
    length_split: str = "near"
    freeze_split: str = "contained"
    freeze_units: tuple = (1, 2, 3)       # 4 (all): L2 and L2-SP train identically
    fisher_examples: int = 2000
    imagenet: bool = True
    imagenet_size: int = 64
    imagenet_steps: int = 60
    imagenet_examples: int = 20
    imagenet_alphas: tuple = (1e-3, 1e-2, 0.1)
    imagenet_methods: tuple = ("none", "l2", "l2_sp", "linear_probe")
    analysis_examples: int = 1000
    test_examples_per_class: int = 0     # 0: every test image of the target classes
    source_eval_examples: int = 1000
    workers: int = 2


QUICK = dict(splits=("far",), sizes=(20,), main_steps=30, lengths=(30, 60), seeds=2,
             axis_seeds=1, alpha_grid=(0.1,), figure1_alphas=(0.1,),
             figure1_betas=(1e-2, 0.1), figure1_split="far", length_split="far",
             freeze_split="far", freeze_units=(2,), fisher_examples=200,
             pretrain_epochs=0.25, imagenet_size=32, imagenet_steps=5,
             imagenet_alphas=(0.01,), imagenet_methods=("none", "l2_sp"),
             analysis_examples=200, test_examples_per_class=200, source_eval_examples=200)


class Study:
    """Runs the experiments of the module docstring; every table row goes to ``self.rows``
    (``runs``, ``selection``, ``sources``, ...), written as CSV by :meth:`write_tables`."""

    def __init__(self, settings, root, data_dir, report_dir, command):
        self.s, self.root, self.data_dir = settings, root, data_dir
        self.report_dir, self.command = report_dir, command
        self.started = time.time()
        self.pool = pool_lib.Pool(settings.workers)
        self.rows = {name: [] for name in ("sources", "selection", "runs", "deviation",
                                           "r2", "landscape", "fisher")}
        self.phase_seconds = {}
        self.trained = self.reused = 0
        self.run_seconds = 0.0
        self.weights, self.fisher_files, self.chosen = {}, {}, {}

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
        return Target(SPLITS[split], SMALL, n, steps, self.weights[split],
                      self.fisher_files.get(split), self.s.test_examples_per_class,
                      self.s.source_eval_examples)

    def _methods(self, methods):
        return [m for m in methods if m in self.s.methods]

    def _select(self, cells, methods, alphas, betas=(protocol.BETA,)):
        """Selection runs of ``methods`` x ``alphas`` x ``betas`` in every cell
        ``(split, n, steps)``; records the rows and ``self.chosen[(cell, method)]``."""
        jobs = []
        for cell, method, alpha, beta in itertools.product(cells, methods, alphas, betas):
            job = protocol.target_config(self._target(*cell), method, alpha, 0, self.root,
                                         self.data_dir, select=True, beta=beta)
            jobs.append((cell, method, job))
        records = self._run_all([j[2] for j in jobs], "selection")
        by_key = {}
        for (cell, method, job), record in zip(jobs, records):
            penalty = job.config.penalty
            self.rows["selection"].append(dict(
                arm="small_resnet", split=cell[0], examples_per_class=cell[1], steps=cell[2],
                method=method, alpha=penalty.alpha, beta=penalty.beta,
                val_accuracy=record["accuracy"], num_val=record["num_eval"]))
            if penalty.beta == protocol.BETA:
                by_key.setdefault((cell, method), []).append(record)
        for key, group in by_key.items():
            self.chosen[key] = choose(group)

    def _alpha(self, cell, method):
        """The chosen alpha of ``method`` in ``cell`` (or, for a length not selected on, in
        the same split and size at ``main_steps``); 0 for untuned methods."""
        if not protocol.is_tuned(method):
            return 0.0
        base = protocol.base_method(method)
        if (cell, base) in self.chosen:
            return self.chosen[(cell, base)]
        return self.chosen[((cell[0], cell[1], self.s.main_steps), base)]

    def _finals(self, cells, methods, seeds, experiment, log_deviation=False,
                save_seed=None, source_eval=False):
        jobs = []
        for cell, method, seed in itertools.product(cells, methods, range(1, seeds + 1)):
            alpha = self._alpha(cell, method)
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
    def sources(self):
        from tftransfer.data import fashion_mnist

        labels = fashion_mnist.load(self.data_dir)["train"][1]
        configs = {name: protocol.source_config(
            SPLITS[name], self.root, self.s.pretrain_epochs, self.data_dir,
            int(np.isin(labels, SPLITS[name].source_classes).sum()))
            for name in self.s.splits}
        records = self._run_all(list(configs.values()), "sources")
        for (name, job), record in zip(configs.items(), records):
            self.weights[name] = os.path.join(job.config.runtime.output_dir,
                                              "model.weights.h5")
            self.rows["sources"].append(dict(
                split=name, source_classes=" ".join(map(str, SPLITS[name].source_classes)),
                target_classes=" ".join(map(str, SPLITS[name].target_classes)),
                train_images=record["num_train"], steps=record["steps"],
                source_test_accuracy=record["accuracy"], train_time_s=record["train_time_s"]))
        first = protocol.target_config(self._target(self.s.splits[0], self.s.main_examples,
                                                    self.s.main_steps), "none", 0.0, 0,
                                       self.root, self.data_dir, select=False)
        self.kernel_sizes = self.pool.map(analyses.kernel_sizes, [first])[0]

    def fisher(self):
        if not any(m in protocol.FISHER_METHODS for m in self.s.methods):
            return
        jobs = []
        for name in self.s.splits:
            job = protocol.target_config(
                self._target(name, self.s.main_examples, self.s.main_steps), "none", 0.0, 0,
                self.root, self.data_dir, select=False, source_eval=True)
            self.fisher_files[name] = os.path.join(self.root, "sources", name, "fisher.npz")
            jobs.append((job, self.fisher_files[name], self.s.fisher_examples))
        self.pool.map(_fisher_job, jobs)
        from tftransfer import fisher as fisher_lib
        from tftransfer.analysis.fisher_stats import fisher_summary
        for name in self.s.splits:
            values = fisher_lib.load(self.fisher_files[name])
            summary = fisher_summary(values, [p for p in values if p in self.kernel_sizes])
            for row in summary.to_dict("records"):
                self.rows["fisher"].append(dict(split=name, **row))

    def main(self):
        cells = [(split, self.s.main_examples, self.s.main_steps) for split in self.s.splits]
        self._select(cells, self._methods(protocol.TUNED), self.s.alpha_grid)
        self.main_configs = self._finals(cells, self._methods(protocol.ALL_METHODS),
                                         self.s.seeds, "main", log_deviation=True,
                                         save_seed=1, source_eval=True)

    def sizes(self):
        cells = [(split, n, self.s.main_steps) for split in self.s.splits
                 if split in self.s.size_splits
                 for n in self.s.sizes if n != self.s.main_examples]
        tuned = [m for m in self._methods(self.s.axis_methods) if protocol.is_tuned(m)]
        self._select(cells, tuned, self.s.alpha_grid)
        self._finals(cells, self._methods(self.s.axis_methods), self.s.axis_seeds, "sizes")

    def lengths(self):
        cells = [(self.s.length_split, self.s.main_examples, steps)
                 for steps in self.s.lengths if steps != self.s.main_steps]
        self._finals(cells, self._methods(self.s.axis_methods), self.s.axis_seeds,
                     "lengths", log_deviation=True)

    def figure1(self):
        cell = (self.s.figure1_split, self.s.main_examples, self.s.main_steps)
        if "l2_sp" in self.s.methods:
            saved = dict(self.chosen)
            self._select([cell], ["l2_sp"], self.s.figure1_alphas, self.s.figure1_betas)
            self.chosen = saved  # the main selection (beta = 0.01) stays in force

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
        jobs = [(m, a, protocol.target_config(target, m, a, 0, self.root, self.data_dir,
                                              select=True))
                for m in tuned for a in self.s.imagenet_alphas]
        records = self._run_all([j[2] for j in jobs], "imagenet selection")
        chosen = {}
        for (method, alpha, job), record in zip(jobs, records):
            self.rows["selection"].append(dict(
                arm=arm.arch, split="imagenet", examples_per_class=target.examples_per_class,
                steps=target.steps, method=method, alpha=alpha, beta=job.config.penalty.beta,
                val_accuracy=record["accuracy"], num_val=record["num_eval"]))
            chosen.setdefault(method, []).append(record)
        chosen = {m: choose(group) for m, group in chosen.items()}
        finals = [(m, protocol.target_config(target, m, chosen.get(m, 0.0), seed, self.root,
                                             self.data_dir, select=False))
                  for m in self.s.imagenet_methods for seed in range(1, self.s.axis_seeds + 1)]
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

    def run(self):
        """Every experiment, in order of importance; the tables are rewritten after each."""
        try:
            self._phase("sources", self.sources)
            self._phase("fisher", self.fisher)
            self._phase("main", self.main)
            self._phase("analyses", self.analyses)
            self._phase("figure1", self.figure1)
            self._phase("freeze", self.freeze)
            self._phase("lengths", self.lengths)
            self._phase("sizes", self.sizes)
            if self.s.imagenet:
                self._phase("imagenet", self.imagenet)
        finally:
            self.pool.close()

    def write_tables(self):
        """CSV per table and ``study.json`` (settings, command, times, how many runs this
        invocation trained and how many it found finished) into the report directory."""
        from tftransfer.io_utils import atomic_write_text

        out_dir = self.report_dir
        os.makedirs(out_dir, exist_ok=True)
        for name, rows in self.rows.items():
            frame = pd.DataFrame(rows)
            if "output_dir" in frame:
                frame = frame.drop(columns=["output_dir"])
            atomic_write_text(os.path.join(out_dir, f"{name}.csv"),
                              frame.to_csv(index=False, float_format="%.6g"))
        atomic_write_json(os.path.join(out_dir, "study.json"), {
            "command": self.command, "settings": dataclasses.asdict(self.s),
            "wall_time_s": time.time() - self.started, "phase_seconds": self.phase_seconds,
            "runs_trained": self.trained, "runs_reused": self.reused,
            "run_seconds": self.run_seconds, "cpu_count": os.cpu_count()})


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


def load_tables(out_dir):
    """The CSV tables and ``study.json`` written by :meth:`Study.write_tables`."""
    tables = {}
    for name in ("sources", "selection", "runs", "deviation", "r2", "landscape", "fisher"):
        path = os.path.join(out_dir, f"{name}.csv")
        if os.path.exists(path) and os.path.getsize(path) > 1:
            tables[name] = pd.read_csv(path)
        else:
            tables[name] = pd.DataFrame()
    with open(os.path.join(out_dir, "study.json")) as f:
        tables["study"] = json.load(f)
    return tables
