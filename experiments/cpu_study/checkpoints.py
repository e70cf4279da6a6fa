"""Part ``checkpoints``: transfer from source networks at several pretraining stages.

The claims tested (report: :mod:`experiments.cpu_study.report.checkpoints`):

- papers/003: during one pretraining process, models at middle epochs can be better
  feature extractors (FE: frozen backbone, new head) than the fully trained one, while
  fine-tuning (FT) keeps growing with the source accuracy; the penultimate features first
  learn the components of the large singular values.
- papers/000 (Liu et al. 2019, Figure 9): the fine-tuning gain grows only in the early
  pretraining epochs and falls afterwards.

Checkpoints. The small ResNet is pretrained on each split's source classes
(:func:`experiments.cpu_study.protocol.source_config`: batch 128, learning rate 0.05,
divided by 10 after 2/3 of the steps) for each of ``Config.epochs``. Each checkpoint is its
own driver run (``save_weights``), with the **same seed and the learning-rate schedule of
the longest run**: the shorter runs drop the decay step that lies past their end. The
training stream is a pure function of the seed (:mod:`tftransfer.data.stream`) and the
initialisation is seeded, so the run of ``s`` steps is the first ``s`` steps of the
longest run: these are checkpoints of one pretraining process, as in the papers (only
the longest sees the learning-rate decay), at the cost of ``sum(epochs)`` instead of
``max(epochs)`` epochs of training -- the driver keeps only its two newest
``tf.train`` checkpoints, and separate runs are reused on resume like every other run.
(tests/test_cpu_study_checkpoints.py checks the prefix property bitwise against the
longest run's per-step ``tf.train`` checkpoint.)

Budget of the full :class:`Config` (measured on this 2-core machine while other jobs ran,
one thread per run: a 300-step target run of the small ResNet ~32 s with its start-up, a
linear probe ~17 s, a source step of batch 128 ~0.36 s): per split, 1719 source steps
(~10 min), 5 checkpoints x (3 seeds x 3 methods + 3 selection runs) + 3 scratch runs
(~30 min), six spectra (~1 min): ~41 min of one core, so the two splits take about
40 minutes on the study's two workers.

For each checkpoint and seed (``1..seeds``), target runs of
:func:`experiments.cpu_study.protocol.target_config` on the split's target classes:
``linear_probe`` (FE: every unit and batch norm frozen, the new head trained),
``none`` (plain FT) and ``l2_sp`` (alpha chosen per checkpoint over ``alpha_grid`` on one
held-out 30% validation split of the labelled images, seed 0, by the study's rule
:func:`experiments.cpu_study.experiments.cross_validated`: validation accuracy, ties to
the lower validation cross-entropy, then the smaller alpha -- one split, not the main
parts' 5-fold cross-validation, for the budget; a single alpha is used as given), and
``scratch`` once (the transfer gain is ``FT(checkpoint) - FT(scratch)``). Every run goes
through ``study.run_all`` (finished runs are reused). The part runs on the splits of
``Config.splits`` that the study's settings hold (``--quick``: the quick split, far).

Spectrum: the singular values of the column-centred ``avg_pool`` features
(:func:`tftransfer.analysis.spectrum.singular_values`) of the first
``spectrum_examples_per_class`` test images of each target class, from each checkpoint
and from the random initialisation (``epochs`` 0, the scratch network of seed 1), on all
those images (``subset`` 0) and on ``spectrum_subsets`` disjoint class-balanced subsets
(``subset`` 1..K: image ``i`` of a class goes to subset ``1 + i mod K``), whose spread
gives the report its error bars.

Tables: ``checkpoints`` (one row per split x checkpoint x method x seed: epochs,
source_accuracy, method, alpha, seed, test_accuracy; ``scratch`` rows have epochs 0),
``checkpoint_selection`` (the L2-SP validation runs) and ``checkpoint_spectrum``
(split, checkpoint, epochs, subset, index, singular_value, normalized = sigma_i /
sigma_1).
"""
import dataclasses
import itertools
import os

import numpy as np
from absl import logging

from experiments.cpu_study import protocol
from experiments.cpu_study.protocol import SMALL, SPLITS, Target
from tftransfer.training import config as config_lib

NAME = "checkpoints"
TABLES = ("checkpoints", "checkpoint_selection", "checkpoint_spectrum")
CUT = ("checkpoints of one seeded pretraining on five Fashion-MNIST classes, 1/16 to 4 "
       "epochs, instead of ImageNet / Food-101 over tens of epochs; one source seed (the "
       "spread is over 3 target seeds only); two splits; 300 iterations on 20 images per "
       "class; L2-SP's alpha on one validation split per checkpoint (not 5-fold "
       "cross-validation)")

METHODS = ("linear_probe", "none", "l2_sp")


@dataclasses.dataclass
class Config:
    """Sizes of the part (full defaults: about 40 minutes on 2 cores, module docstring)."""
    splits: tuple = ("near", "far")
    epochs: tuple = (0.0625, 0.25, 1.0, 2.0, 4.0)   # pretraining lengths, increasing
    methods: tuple = METHODS
    examples_per_class: int = 20
    steps: int = 300
    seeds: int = 3
    alpha_grid: tuple = (1e-3, 1e-2, 0.1)            # L2-SP, chosen on validation
    spectrum_examples_per_class: int = 200
    spectrum_subsets: int = 5
    test_examples_per_class: int = 0                 # 0: every test image


# QUICK: L2-SP left out (two compiled models fewer; its selection has its own test).
QUICK = dict(splits=("far",), epochs=(0.03, 0.12), methods=("linear_probe", "none"),
             steps=10, seeds=2, alpha_grid=(0.1,), spectrum_examples_per_class=40,
             spectrum_subsets=2, test_examples_per_class=100)


def checkpoint_name(epochs):
    """``"0.25ep"`` for 0.25 epochs; ``"init"`` for 0 (the random initialisation)."""
    return "init" if epochs == 0 else f"{epochs:g}ep"


def source_runs(split, epochs, root, data_dir, num_train):
    """``{epochs: StudyRun}``: the pretraining runs of the module docstring, under
    ``root/checkpoints/sources/<split>/e<epochs>``; every run has the seed and the
    learning-rate decay step of the longest one (kept only by runs that reach it)."""
    if list(epochs) != sorted(set(epochs)) or min(epochs) <= 0:
        raise ValueError(f"epochs={epochs}: give increasing positive pretraining lengths.")
    longest = protocol.source_config(split, root, max(epochs), data_dir, num_train)
    boundary = longest.config.optim.lr_boundaries
    runs = {}
    for e in epochs:
        run = protocol.source_config(split, root, e, data_dir, num_train)
        steps = run.config.optim.train_steps
        run.config = config_lib.replace(
            run.config, lr_boundaries=[b for b in boundary if b < steps],
            output_dir=os.path.join(root, "checkpoints", "sources", split.name, f"e{e:g}"))
        runs[e] = run
    return runs


def weights_path(run):
    return os.path.join(run.config.runtime.output_dir, "model.weights.h5")


def _source_train_images(data_dir, split):
    from tftransfer.data import fashion_mnist

    labels = fashion_mnist.load(data_dir)["train"][1]
    return int(np.isin(labels, split.source_classes).sum())


def _target(config, split, weights):
    return Target(split, SMALL, config.examples_per_class, config.steps, weights,
                  test_examples_per_class=config.test_examples_per_class)


def run(study, config):
    """Pretrains the checkpoints, runs the target runs and the spectra; appends the rows of
    :data:`TABLES` to ``study.rows``."""
    root = os.path.join(study.root, "checkpoints")
    methods = [m for m in config.methods if m in METHODS]
    splits = [x for x in config.splits if x in study.s.splits]
    if not splits:
        logging.info(f"part checkpoints: none of its splits {config.splits} in the "
                     f"settings' {study.s.splits}; nothing to do")
    for name in splits:
        split = SPLITS[name]
        sources = source_runs(split, config.epochs, study.root, study.data_dir,
                              _source_train_images(study.data_dir, split))
        records = study.run_all(list(sources.values()), f"checkpoints {name}: sources")
        source = {e: (weights_path(r), rec["accuracy"], rec["steps"])
                  for (e, r), rec in zip(sources.items(), records)}
        targets = {e: _target(config, split, source[e][0]) for e in config.epochs}
        alphas = _select(study, config, name, targets, root, methods)
        finals = [(e, m, seed) for e, m, seed in itertools.product(
            config.epochs, methods, range(1, config.seeds + 1))]
        jobs = [protocol.target_config(targets[e], m, alphas.get((e, m), 0.0), seed,
                                       os.path.join(root, f"e{e:g}"), study.data_dir,
                                       select=False) for e, m, seed in finals]
        scratch = [protocol.target_config(_target(config, split, None), "scratch", 0.0,
                                          seed, os.path.join(root, "scratch"),
                                          study.data_dir, select=False)
                   for seed in range(1, config.seeds + 1)]
        records = study.run_all(jobs + scratch, f"checkpoints {name}: targets")
        keys = finals + [(0, "scratch", seed) for seed in range(1, config.seeds + 1)]
        for (e, method, seed), job, record in zip(keys, jobs + scratch, records):
            study.rows.setdefault("checkpoints", []).append(dict(
                split=name, checkpoint=checkpoint_name(e), epochs=float(e),
                source_steps=source[e][2] if e else 0,
                source_accuracy=source[e][1] if e else np.nan, method=method,
                alpha=job.config.penalty.alpha, beta=job.config.penalty.beta, seed=seed,
                test_accuracy=record["accuracy"], num_test=record["num_eval"],
                train_time_s=record["train_time_s"]))
        spectra = [(name, 0.0, scratch[0], config)] + [
            (name, e, protocol.target_config(targets[e], "none", 0.0, 1,
                                             os.path.join(root, f"e{e:g}"), study.data_dir,
                                             select=False), config)
            for e in config.epochs]
        for rows in study.pool.map(spectrum_job, spectra):
            study.rows.setdefault("checkpoint_spectrum", []).extend(rows)


def _select(study, config, name, targets, root, methods):
    """``{(epochs, "l2_sp"): alpha}``: chosen per checkpoint by
    :func:`experiments.cpu_study.experiments.cross_validated` on the validation records
    (it refuses any other); the one alpha of a one-value grid is used without selection
    runs."""
    from experiments.cpu_study.experiments import cross_validated

    if "l2_sp" not in methods:
        return {}
    if len(config.alpha_grid) == 1:
        return {(e, "l2_sp"): float(config.alpha_grid[0]) for e in targets}
    cells = list(itertools.product(targets, config.alpha_grid))
    jobs = [protocol.target_config(targets[e], "l2_sp", alpha, 0,
                                   os.path.join(root, f"e{e:g}"), study.data_dir, select=True)
            for e, alpha in cells]
    records = study.run_all(jobs, f"checkpoints {name}: selection")
    grouped = {}
    for (e, alpha), record in zip(cells, records):
        grouped.setdefault(e, []).append(record)
        study.rows.setdefault("checkpoint_selection", []).append(dict(
            split=name, checkpoint=checkpoint_name(e), epochs=float(e), method="l2_sp",
            alpha=float(alpha), val_accuracy=record["accuracy"],
            val_cross_entropy=record.get("cross_entropy"), num_val=record["num_eval"]))
    return {(e, "l2_sp"): float(cross_validated(group)[1].value["alpha"])
            for e, group in grouped.items()}


def target_features(run, examples_per_class):
    """``(features [N, D], labels [N])``: the ``avg_pool`` features of ``run``'s network at
    its starting point (the source checkpoint with the new head, or the random
    initialisation of ``scratch``) on the first ``examples_per_class`` test images of each
    target class, unaugmented."""
    from tftransfer.analysis.source_task import feature_model
    from tftransfer.analysis.spectrum import feature_matrix
    from tftransfer.training import data as data_lib
    from tftransfer.training.model import build_transfer

    inputs = dataclasses.replace(run.inputs, test_examples_per_class=examples_per_class)
    data = inputs.load(run.config)
    transfer = build_transfer(run.config, data.num_classes, data.input_shape)
    images = data_lib.network_inputs(data.test, transfer.preprocessing, data.mean)
    labels = np.concatenate([y.numpy() for _, y in images])
    return feature_matrix(feature_model(transfer.model, "avg_pool"), images), labels


def subsets(labels, count):
    """Subset (1..count) of each image: the ``i``-th image of a class goes to
    ``1 + i mod count``, so every subset holds about as many images of each class."""
    out = np.zeros(len(labels), int)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        out[where] = 1 + np.arange(len(where)) % count
    return out


def spectrum_rows(name, epochs, features, labels, count):
    """Rows of ``checkpoint_spectrum`` for one network: subset 0 (every image) and
    1..``count`` (:func:`subsets`)."""
    from tftransfer.analysis.spectrum import singular_values

    rows = []
    part = subsets(labels, count)
    for subset in range(count + 1):
        values = singular_values(features if subset == 0 else features[part == subset])
        for i, s in enumerate(values):
            rows.append(dict(split=name, checkpoint=checkpoint_name(epochs),
                             epochs=float(epochs), subset=subset, num_images=int(
                                 len(features) if subset == 0 else (part == subset).sum()),
                             index=i, singular_value=float(s),
                             normalized=float(s / values[0]) if values[0] > 0 else 0.0))
    return rows


def spectrum_job(job):
    """Worker job ``(split name, epochs, StudyRun, Config)`` -> spectrum rows."""
    name, epochs, study_run, config = job
    features, labels = target_features(study_run, config.spectrum_examples_per_class)
    return spectrum_rows(name, epochs, features, labels, config.spectrum_subsets)
