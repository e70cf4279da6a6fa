"""Part ``transferability`` of the CPU study: the claims of Liu et al. 2019, "Towards
Understanding the Transferability of Deep Representations" (papers 000 and 001), on the
three splits of :mod:`experiments.cpu_study.protocol`.

For each split, the small ResNet is fine-tuned on the target from the split's pretrained
source (method ``none``) and trained from a random initialisation (``scratch``), ``seeds``
runs each, with the trained weights saved and the deviation of the inherited kernels
logged. Then, per run (in a worker):

- gradient statistics on a fixed probe batch (the first ``probe_examples`` images of the
  run's training stream) at the starting point and every ``record_every`` steps of the
  run's first ``first_steps`` steps, re-run with the driver's own model, optimizer and
  data stream (:class:`tftransfer.analysis.gradients.GradientStatistics`): per kernel
  ``||dL/dW||_2`` and ``L(w - eta g)`` for ``eta`` = ``step_scales`` x the learning rate
  (Figures 6, 7);
- loss-landscape slices (:func:`experiments.cpu_study.analyses.landscape_frame`, the
  study's landscape code): the straight path from the starting point to the solution and
  ``L(w + t d)`` along a filter-normalised random direction around the solution and
  around the starting point (Figures 3, 5, 10);
- the flattened inherited kernels at the start and at the end of the run.

In the main process the flattened kernels of every start and every solution are mapped to
2-D by t-SNE (:func:`tftransfer.analysis.weight_map.embed`, Figure 4), with each solution's
distances to its own start and to the nearest start; the driver's logged deviation
``||W - W0||_F / sqrt(n)`` (:func:`experiments.cpu_study.analyses.distance_curve`) gives
Figure 2's curves. The report section (:mod:`experiments.cpu_study.report.transferability`)
turns the tables into the claims.

The starting point of a run is rebuilt as the driver builds it: ``keras.utils.
set_random_seed(seed)``, the inputs loaded, then the model built (for ``scratch`` every
weight is drawn then; for ``none`` the source weights are loaded and the head drawn).

Each run's analyses are kept beside it (:func:`analysis_path`) and read back by a later
invocation with the same analysis settings. The runs live in
``<study root>/transferability``: the driver reuses a finished run found
in its directory whatever its output options, and the main experiment's runs save no
weights (but seed 1's) and log no deviation for ``scratch``.
"""
import dataclasses
import hashlib
import json
import os
import pickle
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from experiments.cpu_study import analyses, protocol
from experiments.cpu_study.protocol import SMALL, SPLITS, Target
from tftransfer.analysis import gradients as gradients_lib
from tftransfer.analysis import weight_map as weight_map_lib
from tftransfer.training import data as data_lib
from tftransfer.training import loop
from tftransfer.training.model import ModelCache

NAME = "transferability"
METHODS = ("none", "scratch")   # fine-tuned from the pretrained source / from random weights
TABLES = ("transfer_runs", "transfer_deviation", "weight_map", "gradient_stats",
          "loss_variation", "init_landscape")
CUT = ("Fashion-MNIST splits and a 4-unit small ResNet trained 300 iterations instead of "
       "ImageNet, ResNet-50 and five image datasets; one random direction per landscape "
       "slice instead of 2-D surfaces; gradient statistics on one probe batch over the first "
       "30 iterations; the inputs-vs-labels decomposition (Figure 8) and the pretraining-"
       "epoch sweep (Figure 9) are not run.")


@dataclasses.dataclass
class Config:
    """Sizes of the part. The defaults: 30 runs of 300 iterations and their analyses, about
    20 minutes with 2 workers (measured on a loaded 2-core machine: a run 34 s, its
    analyses 72 s; the source networks, when not yet trained, come on top)."""
    splits: tuple = ("far", "near", "contained")
    examples_per_class: int = 20
    steps: int = 300
    seeds: int = 5
    test_examples_per_class: int = 0   # 0: every test image of the target classes
    analysis_examples: int = 1000      # target test images of the landscape slices
    landscape_points: int = 13         # t in linspace(-1, 1) (and -0.25..1.25 on the path)
    probe_examples: int = 128          # the gradient probe: first images of the stream
    first_steps: int = 30              # gradient statistics over these first iterations
    record_every: int = 3
    step_scales: tuple = (0.25, 0.5, 1.0, 2.0, 4.0)   # eta / learning rate
    perplexity: float = 5.0            # t-SNE (lowered to (points - 1) / 3 when fewer)


QUICK = dict(splits=("far",), steps=10, seeds=2, test_examples_per_class=50,
             analysis_examples=50, landscape_points=5, probe_examples=32, first_steps=2,
             record_every=1)


def splits(study, config):
    """The splits of ``config`` that the study's settings hold (``--quick``: far)."""
    return [x for x in config.splits if x in study.s.splits]


def runs(study, config):
    """``{(split, method, seed): StudyRun}`` of the part's driver runs."""
    root = os.path.join(study.root, "transferability")
    paths = list(study.kernel_sizes)
    out = {}
    for split in splits(study, config):
        target = Target(SPLITS[split], SMALL, config.examples_per_class, config.steps,
                        study.source_weights(split),
                        test_examples_per_class=config.test_examples_per_class)
        for method in METHODS:
            for seed in range(1, config.seeds + 1):
                out[(split, method, seed)] = protocol.target_config(
                    target, method, 0.0, seed, root, study.data_dir, select=False,
                    log_every=max(1, config.steps // 20), save_weights=True,
                    deviation_layers=paths)
    return out


def run(study, config):
    """Trains (or reuses) the runs, analyses them on the pool and appends the rows of
    :data:`TABLES` to ``study.rows``."""
    if not splits(study, config):
        logging.info(f"transferability: none of the splits {config.splits} in the settings "
                     f"({study.s.splits}); nothing to do")
        return
    jobs = runs(study, config)
    keys = list(jobs)
    records = study.run_all([jobs[k] for k in keys], "transferability")
    rows = {name: study.rows.setdefault(name, []) for name in TABLES}
    sizes = study.kernel_sizes
    for (split, method, seed), record in zip(keys, records):
        job = jobs[(split, method, seed)]
        curve = analyses.distance_curve(job.config.runtime.output_dir, sizes)
        rows["transfer_runs"].append(dict(
            split=split, method=method, seed=seed,
            examples_per_class=config.examples_per_class, steps=config.steps,
            test_accuracy=record["accuracy"], num_test=record["num_eval"],
            distance=float(curve["distance"].iloc[-1]) if curve is not None else np.nan,
            train_time_s=record["train_time_s"]))
        if curve is not None:
            for step, distance in zip(curve["step"], curve["distance"]):
                rows["transfer_deviation"].append(dict(split=split, method=method, seed=seed,
                                                       step=int(step),
                                                       distance=float(distance)))
    settings, started = dataclasses.asdict(config), time.time()
    results = study.pool.map(_analysis_job, [(jobs[k], settings, list(sizes)) for k in keys])
    logging.info(f"  transferability: {len(keys)} runs analysed in "
                 f"{time.time() - started:.0f} s")
    starts, finals = {}, []
    for (split, method, seed), result in zip(keys, results):
        ids = dict(split=split, method=method, seed=seed)
        rows["gradient_stats"].extend(result["gradients"].assign(**ids).to_dict("records"))
        rows["loss_variation"].extend(result["variation"].assign(**ids).to_dict("records"))
        rows["init_landscape"].extend(result["landscape"].drop(columns=["method"]).assign(
            **ids).to_dict("records"))
        key = start_key(split, method, seed)
        starts.setdefault(key, result["start"])
        finals.append((split, method, seed, key, result["final"]))
    rows["weight_map"].extend(weight_map_rows(starts, finals, config.perplexity))


def start_key(split, method, seed):
    """The starting point's name: the split's source network for ``none`` (its inherited
    kernels do not depend on the seed), the seed's random draw for ``scratch`` (the same
    for every split: the same seed and shapes)."""
    return f"pretrained {split}" if method == "none" else f"random s{seed}"


def weight_map_rows(starts, finals, perplexity=5.0, seed=0):
    """Rows (split, method, seed, kind, start, x, y, distance, relative, nearest_start) of
    the weight-space map: the t-SNE embedding of every start (``starts``: ``{name: flat
    kernels}``) and every solution (``finals``: ``(split, method, seed, start name, flat
    kernels)``). For a solution ``W`` of start ``W0``: ``distance = ||W - W0||_2 /
    sqrt(n)`` (n weights), ``relative = ||W - W0||_2 / ||W0||_2`` and ``nearest_start``
    the start closest to ``W`` in Euclidean distance; 0, 0 and itself for a start (split
    ``any`` and seed 0 for the random starts, shared by the splits; seed 0 for the
    pretrained ones, shared by the seeds)."""
    names = list(starts)
    start_matrix = np.stack([np.asarray(starts[n], np.float64) for n in names])
    rows = []
    for name in names:
        split, method = (name.split(" ", 1)[1], "none") if name.startswith("pretrained") \
            else ("any", "scratch")
        rows.append(dict(split=split, method=method, seed=0, kind="start", start=name,
                         distance=0.0, relative=0.0, nearest_start=name))
    for split, method, seed, name, final in finals:
        final = np.asarray(final, np.float64)
        w0 = np.asarray(starts[name], np.float64)
        gap = np.linalg.norm(final - w0)
        to_starts = np.linalg.norm(start_matrix - final[None], axis=1)
        rows.append(dict(split=split, method=method, seed=seed, kind="final", start=name,
                         distance=gap / np.sqrt(final.size),
                         relative=gap / np.linalg.norm(w0),
                         nearest_start=names[int(np.argmin(to_starts))]))
    vectors = [starts[n] for n in names] + [f[4] for f in finals]
    perplexity = min(perplexity, max(1.0, (len(vectors) - 1) / 3))
    xy = weight_map_lib.embed(vectors, perplexity, seed)
    for row, (x, y) in zip(rows, xy):
        row.update(x=float(x), y=float(y))
    return rows


_CACHE = None


def start_model(run):
    """``(compiled model, input data)`` of ``run`` at its starting point, as the driver
    builds it: seed, inputs, then the compiled model of a
    :class:`tftransfer.training.model.ModelCache` (one per process; a cached model is reset
    to exactly what a fresh build with this seed draws, and keeps its traced train step)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = ModelCache()
    keras.utils.set_random_seed(run.config.optim.seed)
    data = run.inputs.load(run.config)
    compiled = _CACHE.get(run.config, tf.distribute.get_strategy(), data.num_classes,
                          data.input_shape)
    return compiled, data


def probe_batch(train, examples):
    """``(x, y)`` NumPy arrays: the first ``examples`` images of the network-input stream
    ``train`` (whole batches, then cut)."""
    xs, ys, seen = [], [], 0
    for x, y in train:
        xs.append(x.numpy())
        ys.append(y.numpy())
        seen += len(ys[-1])
        if seen >= examples:
            break
    return np.concatenate(xs)[:examples], np.concatenate(ys)[:examples]


def flat_kernels(model, paths):
    """The variables ``paths`` of ``model``, flattened and concatenated in that order."""
    by_path = {v.path: v for v in model.trainable_variables}
    return np.concatenate([np.ravel(by_path[p].numpy()) for p in paths]).astype(np.float32)


def gradient_run(run, config, paths):
    """Gradient statistics of the first ``config["first_steps"]`` steps of ``run`` on its
    probe batch and the flattened ``paths`` at its start: ``(norm table (step, path, size,
    grad_norm), loss-along-gradient table (step, eta, loss), start vector, model)`` (the
    model at the last recorded step)."""
    compiled, data = start_model(run)
    model = compiled.model
    start = flat_kernels(model, paths)
    train = data_lib.network_inputs(data.train, compiled.transfer.preprocessing, data.mean)
    kernels = [v.path for v in model.trainable_variables if v.path.endswith("kernel")]
    stats = gradients_lib.GradientStatistics(
        probe_batch(train, config["probe_examples"]), config["record_every"],
        config["step_scales"], kernels)
    loop.fit(model, train, config["first_steps"], [stats])
    norms, variation = stats.frames()
    sizes = {v.path: int(np.prod(v.shape)) for v in model.trainable_variables}
    norms["size"] = norms["path"].map(sizes)
    return norms[["step", "path", "size", "grad_norm"]], variation, start, model


def analyse_run(run, config, paths):
    """The per-run analyses of the module docstring: ``{"gradients", "variation",
    "landscape": tables, "start", "final": flattened inherited kernels (``paths``)}``."""
    norms, variation, start, model = gradient_run(run, config, paths)
    model.load_weights(os.path.join(run.config.runtime.output_dir, "model.weights.h5"))
    final = flat_kernels(model, paths)
    keras.utils.set_random_seed(run.config.optim.seed)  # the start as the driver drew it
    landscape = analyses.landscape_frame({_method(run): run}, config["analysis_examples"],
                                         config["landscape_points"])
    return dict(gradients=norms, variation=variation, landscape=landscape, start=start,
                final=final)


def _method(run):
    return "scratch" if run.config.model.source == "none" else "none"


def analysis_path(run, config, paths):
    """Where the analyses of ``run`` are kept: ``transferability_<hash>.pkl`` in the run's
    directory, the hash of the analysis settings ``config`` and ``paths``."""
    text = json.dumps([config, list(paths)], sort_keys=True)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return os.path.join(run.config.runtime.output_dir, f"transferability_{digest}.pkl")


def _analysis_job(job):
    """:func:`analyse_run`, read back when this run was analysed with these settings."""
    run, config, paths = job
    path = analysis_path(run, config, paths)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    result = analyse_run(run, config, paths)
    with open(path + ".tmp", "wb") as f:
        pickle.dump(result, f)
    os.replace(path + ".tmp", path)
    return result
