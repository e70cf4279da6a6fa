"""The study's analyses of finished runs, each a function of study runs
(:class:`~experiments.cpu_study.protocol.StudyRun`: configuration and inputs) and files
(run in a worker process): the source Fisher, layer-wise R^2, loss-landscape slices and
the distance from the starting point read from a run's ``train_log.csv``.
"""
import dataclasses
import os

import numpy as np
import pandas as pd

from tftransfer import fisher as fisher_lib
from tftransfer.analysis import landscape, r2
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib
from tftransfer.training.model import build_transfer


def _network_batches(run, max_examples, mode, source=False):
    """``(x, y)``: at most ``max_examples`` images of the evaluation split of ``run``
    (``source``: of its source classes' training images, in the stored order instead),
    preprocessed for a network of preprocessing ``mode``."""
    config = run.config
    if source:
        config = config_lib.replace(config, classes=list(run.inputs.source_classes),
                                    examples_per_class=0, validation_fraction=0.0)
    data = run.inputs.load(config)
    if source:
        images = data.train.take(-(-max_examples // config.optim.batch_size))
    else:
        images = data.test
    out, seen = [], 0
    for x, y in data_lib.network_inputs(images, mode, data.mean):
        out.append((x.numpy(), y.numpy()))
        seen += len(y)
        if seen >= max_examples:
            break
    x, y = np.concatenate([b[0] for b in out]), np.concatenate([b[1] for b in out])
    return x[:max_examples], y[:max_examples]


def _start(run):
    """The transfer model of ``run`` at its starting point."""
    data = run.inputs.load(run.config)
    return build_transfer(run.config, data.num_classes, data.input_shape)


def source_fisher(run, path, max_examples):
    """Exact diagonal Fisher of the source network (the target model's backbone with the
    source head put back, at the starting point) on ``max_examples`` source training images
    of ``run`` (a target run whose inputs name the source classes); saved to ``path``."""
    if os.path.exists(path):
        return path
    run = dataclasses.replace(run, inputs=dataclasses.replace(run.inputs, pad=0))
    transfer = _start(run)
    x, _ = _network_batches(run, max_examples, transfer.preprocessing, source=True)
    values = fisher_lib.diagonal(transfer.source_model(), x, mode="exact", batch_size=64)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fisher_lib.save(path, values, {"weights": run.config.model.weights,
                                   "examples": int(len(x)),
                                   "classes": list(run.inputs.source_classes),
                                   "mode": "exact"})
    return path


def _models(run):
    """(start, finetuned) Keras models of a finished run that saved its weights."""
    start, tuned = _start(run), _start(run)
    tuned.model.load_weights(os.path.join(run.config.runtime.output_dir, "model.weights.h5"))
    return start, tuned


def layer_r2_frame(configs, max_examples=1000):
    """Long table (method, layer, unit, r2): R^2 of each run's activations regressed on the
    starting point's, per unit of the default layers, on target test images.
    ``configs``: ``{method: StudyRun}`` of finished runs with saved weights."""
    frames = []
    for method, run in configs.items():
        start, tuned = _models(run)
        x, _ = _network_batches(run, max_examples, start.preprocessing)
        per_layer = r2.layer_r2(start.model, tuned.model, x)
        frames.append(r2.r2_frame({method: per_layer}).rename(columns={"model": "method"}))
    return pd.concat(frames, ignore_index=True)


def landscape_frame(configs, max_examples=1000, points=13, seed=0):
    """Long table (method, kind, t, loss, accuracy) on target test images:
    ``interpolation``: ``L((1 - t) w0 + t w)`` for ``t`` in [-0.25, 1.25] (``w0`` the
    starting point, ``w`` the solution, every weight incl. batch-norm statistics);
    ``around_solution`` / ``around_start``: ``L(w + t d)`` along one filter-normalised
    random direction ``d``, ``t`` in [-1, 1]."""
    rows = []
    for method, run in configs.items():
        start, tuned = _models(run)
        data = _network_batches(run, max_examples, start.preprocessing)
        w0, w = start.model.get_weights(), tuned.model.get_weights()
        frame = landscape.interpolation(tuned.model, w0, w, data,
                                        np.linspace(-0.25, 1.25, points))
        rows.append(frame.assign(method=method, kind="interpolation"))
        tuned.model.set_weights(w)
        for kind, model in (("around_solution", tuned.model), ("around_start", start.model)):
            frame = landscape.slice_1d(model, data, np.linspace(-1, 1, points), seed=seed)
            rows.append(frame.rename(columns={"alpha": "t"}).assign(method=method, kind=kind))
    return pd.concat(rows, ignore_index=True)[["method", "kind", "t", "loss", "accuracy"]]


def kernel_sizes(run):
    """``{path: size}`` of the inherited kernels of ``run``'s model."""
    config = run.config
    data = run.inputs.load(config_lib.replace(config, examples_per_class=max(
        2, config.data.examples_per_class)))
    transfer = build_transfer(config, data.num_classes, data.input_shape)
    new = set(transfer.new_layers)
    return {v.path: int(np.prod(v.shape)) for v in transfer.model.trainable_variables
            if v.path.endswith("kernel") and v.path.split("/")[0] not in new}


def distance_curve(output_dir, sizes):
    """Table (step, distance) from a run's ``train_log.csv``: the RMS deviation of all
    inherited kernel weights, ``sqrt(sum_l n_l d_l^2 / sum_l n_l)`` with ``d_l`` the logged
    ``||W_l - W0_l||_F / sqrt(n_l)``; None when the run logged no deviation of them."""
    path = os.path.join(output_dir, "train_log.csv")
    if not os.path.exists(path):
        return None
    log = pd.read_csv(path)
    columns = {p: f"deviation:{p}" for p in sizes if f"deviation:{p}" in log.columns}
    if len(columns) != len(sizes):
        return None
    total = sum(sizes.values())
    squared = sum(sizes[p] * log[c] ** 2 for p, c in columns.items())
    return pd.DataFrame({"step": log["step"], "distance": np.sqrt(squared / total)})
