"""Runs many short jobs on a few worker processes, each with its share of the CPU threads.

Small networks use two cores poorly: two single-threaded processes finish about 1.35x more
2-core runs per minute than one process with both cores (measured on the study's
300-step runs). Each worker keeps one :class:`tftransfer.training.model.ModelCache`, so
runs that differ only in seed or data reuse a compiled model. ``workers=1`` runs every job
in this process (no pool).
"""
import concurrent.futures
import multiprocessing
import os

_CACHE = None


def _init_worker(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from absl import logging
    logging.set_verbosity(logging.WARNING)


def _cache():
    global _CACHE
    if _CACHE is None:
        from tftransfer.training.model import ModelCache
        _CACHE = ModelCache()
    return _CACHE


def run_study_run(job):
    """One driver run of ``job`` (a :class:`~experiments.cpu_study.protocol.StudyRun`: its
    configuration and inputs) with the worker's model cache."""
    from tftransfer.training.run import run

    return run(job.config, cache=_cache(), inputs=job.inputs)


def run_study_runs(jobs):
    """The driver runs of ``jobs``, in order, in one worker (one compiled model when they
    differ only in options that leave it unchanged, such as the seed)."""
    return [run_study_run(job) for job in jobs]


def by_model(jobs):
    """Indices of ``jobs`` (StudyRuns) grouped by compiled model
    (:meth:`ModelCache.config_key`), costliest group first (cost: runs x steps x batch x
    pixels), so that a pool runs each group in one worker with one compile and the long
    groups start first."""
    from tftransfer.training.model import ModelCache

    groups = {}
    for i, job in enumerate(jobs):
        groups.setdefault(ModelCache.config_key(job.config), []).append(i)

    def cost(indices):
        return sum(jobs[i].config.optim.train_steps * jobs[i].config.optim.batch_size
                   * jobs[i].config.data.crop_size ** 2 for i in indices)

    return sorted(groups.values(), key=cost, reverse=True)


def run_grouped(pool, jobs, on_group=None):
    """Driver records of ``jobs`` (StudyRuns) in their order, each :func:`by_model` group run
    in one worker of ``pool``; ``on_group(i, group_records)`` as each group finishes."""
    groups = by_model(jobs)
    results = pool.map(run_study_runs, [[jobs[i] for i in group] for group in groups],
                       on_group)
    records = [None] * len(jobs)
    for group, group_records in zip(groups, results):
        for i, record in zip(group, group_records):
            records[i] = record
    return records


def tally(jobs, records, since):
    """``(trained, reused, run seconds)`` of ``jobs``' records: a run whose results.json is
    newer than ``since`` (a time.time()) was trained by this invocation."""
    trained = reused = 0
    seconds = 0.0
    for job, record in zip(jobs, records):
        path = os.path.join(job.config.runtime.output_dir, "results.json")
        if os.path.getmtime(path) >= since:
            trained += 1
        else:
            reused += 1
        seconds += record["wall_time_s"]
    return trained, reused, seconds


class Pool:
    """``map(function, items, on_result)``: results in the order of ``items``; ``on_result(i,
    result)`` is called as each finishes (progress)."""

    def __init__(self, workers):
        self.workers = max(1, int(workers))
        self._executor = None
        if self.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(threads,))

    def map(self, function, items, on_result=None):
        items = list(items)
        results = [None] * len(items)
        if self._executor is None:
            for i, item in enumerate(items):
                results[i] = function(item)
                if on_result:
                    on_result(i, results[i])
            return results
        futures = {self._executor.submit(function, item): i for i, item in enumerate(items)}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_result:
                on_result(i, results[i])
        return results

    def close(self):
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
