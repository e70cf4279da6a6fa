"""The segmentation study's runs, in order, each batch on the classification study's worker
pool (:mod:`experiments.cpu_study.pool`: runs sharing a compiled model in one worker):

1. ``source``: the classification study's source network (:func:`protocol.source_run`),
   reused when that study, or an earlier invocation, has trained it under the same root;
2. ``selection``: L2 and L2-SP at every alpha of the grid on each target, trained on 70% of
   the training scenes and scored on the other 30% (validation), seed 0;
3. ``finals``: every method with its chosen alpha, ``seeds`` seeds, trained on every
   training scene and tested on the test scenes (seed 1 keeps its weights);
4. ``examples``: the seed-1 runs' masks on the first test scenes (the figure).

The tables are rewritten after each phase (:mod:`.tables`); a finished run is never
retrained (the driver returns its record), so an interrupted study resumes.
"""
import dataclasses
import os
import time

import numpy as np
from absl import logging

from experiments.cpu_study import pool as pool_lib
from experiments.scene_study import examples as examples_lib
from experiments.scene_study import protocol, tables
from experiments.scene_study.selection import choose


class Study:
    """Runs the phases of the module docstring; ``root``: where every target run goes;
    ``source_root``: the root of the source run (the classification study's by default)."""

    def __init__(self, settings, root, source_root, data_dir, report_dir, command):
        self.s, self.root, self.source_root = settings, root, source_root
        self.data_dir, self.report_dir, self.command = data_dir, report_dir, command
        self.started = time.time()
        self.load_at_start = _load()
        self.pool = pool_lib.Pool(settings.workers)
        self.rows = {name: [] for name in tables.TABLES}
        self.phase_seconds, self.chosen = {}, {}
        self.trained = self.reused = 0
        self.run_seconds = 0.0
        self.weights = None
        self.class_names = {}

    def _run_all(self, jobs, label):
        """Driver records of ``jobs`` (StudyRuns), in their order; those sharing a compiled
        model run in one worker (:func:`pool.by_model`)."""
        started = time.time()
        records = pool_lib.run_grouped(self.pool, jobs)
        trained, reused, seconds = pool_lib.tally(jobs, records, self.started)
        self.trained, self.reused = self.trained + trained, self.reused + reused
        self.run_seconds += seconds
        logging.info(f"  {label}: {len(jobs)} runs, {time.time() - started:.0f} s")
        return records

    def _phase(self, name, function):
        started = time.time()
        logging.info(f"== {name}")
        function()
        self.phase_seconds[name] = time.time() - started
        self.write_tables()
        logging.info(f"== {name} done in {self.phase_seconds[name]:.0f} s")

    def _target_run(self, target, method, alpha, seed, select):
        return protocol.target_run(protocol.TARGETS[target], method, alpha, seed, self.root,
                                   self.data_dir, self.weights, self.s, select,
                                   save_weights=not select and seed == 1)

    # ------------------------------------------------------------------ phases
    def source(self):
        from tftransfer.data import fashion_mnist

        labels = fashion_mnist.load(self.data_dir)["train"][1]
        num = int(np.isin(labels, protocol.SOURCE_SPLIT.source_classes).sum())
        job = protocol.source_run(self.source_root, self.s, self.data_dir, num)
        record = self._run_all([job], "source")[0]
        self.weights = protocol.source_weights(job)
        split = protocol.SOURCE_SPLIT
        self.rows["sources"].append(dict(
            split=split.name, source_classes=" ".join(map(str, split.source_classes)),
            train_images=record["num_train"], steps=record["steps"],
            source_test_accuracy=record["accuracy"], train_time_s=record["train_time_s"]))

    def selection(self):
        keys = [(x, m, a) for x in self.s.targets for m in self.s.methods
                if protocol.is_tuned(m) for a in self.s.alpha_grid]
        jobs = [self._target_run(x, m, a, 0, select=True) for x, m, a in keys]
        records = self._run_all(jobs, "selection")
        groups = {}
        for (x, m, a), job, record in zip(keys, jobs, records):
            self.rows["selection"].append(dict(
                target=x, method=m, alpha=a, beta=job.config.penalty.beta,
                val_miou=record["mean_iou"], val_pixel_accuracy=record["pixel_accuracy"],
                num_val=record["num_eval"]))
            groups.setdefault((x, m), []).append(record)
        for key, group in groups.items():
            self.chosen[key] = choose(group)

    def finals(self):
        keys = [(x, m, seed) for x in self.s.targets for m in self.s.methods
                for seed in range(1, self.s.seeds + 1)]
        jobs = [self._target_run(x, m, self.chosen.get((x, m), 0.0), seed, select=False)
                for x, m, seed in keys]
        records = self._run_all(jobs, "finals")
        self.final_jobs = {}
        for (x, m, seed), job, record in zip(keys, jobs, records):
            names = list(record["class_names"])
            self.class_names[x] = names[1:]  # after the background
            row = dict(target=x, method=m, alpha=job.config.penalty.alpha,
                       beta=job.config.penalty.beta, seed=seed,
                       test_miou=record["mean_iou"], pixel_accuracy=record["pixel_accuracy"],
                       num_test=record["num_eval"], steps=record["steps"],
                       train_time_s=record["train_time_s"])
            for name in names:
                iou = record["iou_per_class"].get(name)
                row[f"iou:{name}"] = np.nan if iou is None else iou
            self.rows["runs"].append(row)
            self.final_jobs[(x, m, seed)] = job

    def examples(self):
        jobs = [({m: self.final_jobs[(x, m, 1)] for m in self.s.methods},
                 self.s.example_scenes) for x in self.s.targets]
        found = self.pool.map(_examples_job, jobs)
        examples = {x: dict(e, class_names=self.class_names[x])
                    for x, e in zip(self.s.targets, found)}
        examples_lib.save(os.path.join(self.report_dir, tables.EXAMPLES), examples,
                          self.s.methods)

    def run(self):
        try:
            for name in ("source", "selection", "finals", "examples"):
                self._phase(name, getattr(self, name))
        finally:
            self.pool.close()

    def write_tables(self):
        tables.write(self.report_dir, self.rows, {
            "command": self.command, "settings": dataclasses.asdict(self.s),
            "wall_time_s": time.time() - self.started,
            "phase_seconds": [[k, v] for k, v in self.phase_seconds.items()],
            "runs_trained": self.trained, "runs_reused": self.reused,
            "run_seconds": self.run_seconds, "cpu_count": os.cpu_count(),
            "load_average": [self.load_at_start, _load()],
            "class_names": self.class_names, "chosen": {
                f"{x}/{m}": a for (x, m), a in self.chosen.items()}})


def _load():
    """The machine's 1-minute load average (None where the OS has none): other work on the
    same cores lengthens the study's wall time."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _examples_job(job):
    runs, count = job
    return examples_lib.predict(runs, count)
