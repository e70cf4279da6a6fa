"""Cost per train step of every method of ``tftransfer.methods``, relative to plain
fine-tuning, in one process.

The target network (the small ResNet, or a keras.applications ResNet-50 with ``--arch
resnet50``; random weights, a 10-class source head kept aside, a 4-class new head
``predictions``) is built with the same seed for plain fine-tuning (SGD, momentum 0.9) and
for each method, with the registry's default hyper-parameters:

- loss methods (``delta_fm``, ``delta``, ``bss``, ``lwf``, ``co_tuning``): the target model
  wrapped in its ``LossTermModel``; DELTA's attention (uniform) and Co-Tuning's relationship
  (from random logits) are given, because what they compute once before training is not
  part of a step;
- ``stochnorm``: batch norm swapped for StochNorm;
- ``mars_pgm`` / ``frobenius_pgm`` / ``spd``: the same SGD wrapped;
- ``l2_sp_k`` / ``group_lasso_sp_layer`` and, for reference, ``l2_sp``: weight penalties;
- ``lp_ft``: a phase-1 step (the head on cached features); phase 2 is plain fine-tuning;
- ``wise_ft``: one interpolation of all weights and its assignment (once per grid point of
  the procedure, not per step).

For each method, after an untimed round, ``--repetitions`` rounds of timed blocks of
``--steps`` steps run in the order plain, method, method, plain (ABBA, so that a drift of the
machine's speed hits both alike); one round gives one ratio. Reported: the median ratio in
wall time and in process CPU time (less disturbed by the other processes of a shared
machine), and the ratio of the fastest method block to the fastest plain block in CPU time
(other processes only ever add time: the least disturbed estimate). TensorFlow runs on
``--threads`` threads (default 1, so that the process's CPU time is its work, not spinning).
One method's model lives only while it is timed (a ResNet-50 each).

Prints by default; ``--write`` also writes the table, the command and the date into
BENCHMARKS.md (section ``bench_methods_<arch>``).

    python -m benchmarks.bench_methods [--arch small_resnet] [--image_size 32]
        [--batch_size 32] [--steps 5] [--repetitions 9] [--threads 1] [--methods ...]
        [--write]
"""
import argparse
import datetime
import gc
import os
import platform
import statistics
import time

import numpy as np
from absl import logging

# TensorFlow, Keras and tftransfer are imported where they are used, so that --help and a
# usage error never start TensorFlow.

LOSS_METHODS = ["delta_fm", "delta", "bss", "lwf", "co_tuning"]
OTHER_METHODS = ["stochnorm", "mars_pgm", "frobenius_pgm", "spd", "l2_sp_k",
                 "group_lasso_sp_layer", "l2_sp", "lp_ft", "wise_ft"]
PER_STEP_NOTE = {"lp_ft": "phase-1 step on cached features; phase 2 = plain",
                 "wise_ft": "one interpolation + assignment, per grid point, not per step",
                 "l2_sp": "reference: the paper's penalty"}

SOURCE_CLASSES, TARGET_CLASSES = 10, 4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="small_resnet", choices=("small_resnet", "resnet50"),
                        help="network")
    parser.add_argument("--image_size", type=int, default=32,
                        help="input height and width (3 channels)")
    parser.add_argument("--batch_size", type=int, default=32, help="images per train step")
    parser.add_argument("--steps", type=int, default=5, help="train steps per timed block")
    parser.add_argument("--repetitions", type=int, default=9, help="ABBA rounds per method")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow intra- and inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--methods", type=lambda text: text.split(","),
                        default=LOSS_METHODS + OTHER_METHODS,
                        help="comma-separated methods timed against plain fine-tuning "
                        "(default: all)")
    parser.add_argument("--write", action="store_true",
                        help="also write the result into BENCHMARKS.md")
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in LOSS_METHODS + OTHER_METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from "
                     f"{','.join(LOSS_METHODS + OTHER_METHODS)}")
    return args


def transfer(arch, size, seed=0):
    """(target model, kept source head, new layers): the same weights at every call."""
    import keras

    from tftransfer.models.build import HEAD, copy_head
    from tftransfer.models.small_resnet import small_resnet
    keras.utils.set_random_seed(seed)
    if arch == "small_resnet":
        source = small_resnet((size, size, 3), SOURCE_CLASSES, name="source")
    else:
        source = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                             classes=SOURCE_CLASSES,
                                             classifier_activation=None)
    features = source.get_layer(HEAD).input
    target = keras.Model(source.input, keras.layers.Dense(TARGET_CLASSES, name=HEAD)(features),
                         name="target")
    return target, copy_head(source.get_layer(HEAD), features.shape[-1]), [HEAD]


def _sgd():
    import keras
    return keras.optimizers.SGD(0.01, momentum=0.9)


def _compiled(model, optimizer=None):
    import keras
    model.compile(optimizer=optimizer or _sgd(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _train_step(model, x, y):
    return lambda: model.train_on_batch(x, y)


def _loss_terms(name, target, params):
    from tftransfer.methods import bss, co_tuning, delta, lwf
    if name in ("delta_fm", "delta"):
        layers = delta.default_feature_layers(target)
        attention = None
        if name == "delta":  # uniform: the attention is computed once, before training
            attention = {l: np.full(target.get_layer(l).output.shape[-1],
                                    1.0 / target.get_layer(l).output.shape[-1])
                         for l in layers}
        return [delta.FeatureMapDistance(layers, params["alpha"], attention)]
    if name == "bss":
        return [bss.BatchSpectralShrinkage(params["eta"], int(params["k"]))]
    if name == "lwf":
        return [lwf.LearningWithoutForgetting(params["lambda"], params["temperature"])]
    rng = np.random.default_rng(0)  # co_tuning: the relationship is computed once
    relationship = co_tuning.relationship(rng.normal(size=(64, SOURCE_CLASSES)),
                                          np.arange(64) % TARGET_CLASSES, TARGET_CLASSES)
    return [co_tuning.CoTuningLoss(relationship, params["lambda"])]


def variant(name, arch, x, y):
    """A function running one step (or one unit of work) of ``name`` ("plain" or a method)."""
    import keras

    import tftransfer
    from tftransfer.methods import (group_lasso_sp_layer, l2_sp_k, loss_terms, lp_ft,
                                    mars_pgm, registry, spd, stochnorm, wise_ft)
    from tftransfer.models.build import HEAD
    target, source_head, new = transfer(arch, x.shape[1])
    params = {} if name in ("plain", "l2_sp") else registry.get(name).hyper_parameters
    if name == "plain":
        return _train_step(_compiled(target), x, y)
    if name in LOSS_METHODS:
        if "beta" in params:
            loss_terms.decay_new_layers(target, params["beta"], new)
        model = loss_terms.LossTermModel(target, _loss_terms(name, target, params),
                                         source_head=source_head)
        return _train_step(_compiled(model), x, y)
    if name == "stochnorm":
        model = stochnorm.swap_batch_norm(target, p=params["p"], seed=0)
        return _train_step(_compiled(model), x, y)
    if name in ("mars_pgm", "frobenius_pgm"):
        optimizer = mars_pgm.with_mars_pgm(
            _sgd(), target, gamma=params["gamma"], new_layers=new,
            gamma_new=params["gamma_new"], norm="mars" if name == "mars_pgm" else "frobenius")
        return _train_step(_compiled(target, optimizer), x, y)
    if name == "spd":
        optimizer = spd.with_spd(_sgd(), target, strength=params["strength"])
        return _train_step(_compiled(target, optimizer), x, y)
    if name == "l2_sp_k":
        l2_sp_k.penalize_l2_sp_k(target, params["alpha"], params["beta"], new_layers=new)
        return _train_step(_compiled(target), x, y)
    if name == "group_lasso_sp_layer":
        group_lasso_sp_layer.penalize_group_lasso_sp_layer(target, params["alpha"],
                                                           params["beta"], new_layers=new)
        return _train_step(_compiled(target), x, y)
    if name == "l2_sp":
        tftransfer.penalize(target, "l2_sp", 0.1, 0.01, new_layers=new)
        return _train_step(_compiled(target), x, y)
    if name == "lp_ft":
        feats = lp_ft.feature_model(target).predict(x, verbose=0)
        inputs = keras.Input(feats.shape[1:])
        probe = _compiled(keras.Model(inputs, target.get_layer(HEAD)(inputs)),
                          keras.optimizers.Adam(params["probe_learning_rate"]))
        return _train_step(probe, feats, y)
    if name == "wise_ft":
        theta_0 = wise_ft.snapshot(target)
        theta_1 = {p: v + 0.01 for p, v in theta_0.items()}

        def mix():
            wise_ft.assign(target, wise_ft.interpolate(theta_0, theta_1, params["alpha"]))
            return np.zeros(())
        return mix
    raise ValueError(f"unknown method {name!r}; known: {LOSS_METHODS + OTHER_METHODS}")


def timed_block(step, steps):
    """(wall seconds, process CPU seconds) of ``steps`` calls of ``step``."""
    gc.collect()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            out = step()
        float(np.asarray(out).reshape(-1)[0])  # waits for the last step
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()


def time_method(plain, step, steps, repetitions):
    """Per-round wall and CPU ratios, the fastest CPU blocks (method, plain) and the plain
    step times (wall seconds) of ``step`` against ``plain``."""
    timed_block(step, 2)  # trace
    for warm in (plain, step, step, plain):  # one untimed round
        timed_block(warm, steps)
    wall, cpu, fastest, plain_steps = [], [], [np.inf, np.inf], []
    for _ in range(repetitions):
        blocks = [timed_block(s, steps) for s in (plain, step, step, plain)]
        mine, base = blocks[1:3], blocks[0::3]
        wall.append(sum(b[0] for b in mine) / sum(b[0] for b in base))
        cpu.append(sum(b[1] for b in mine) / sum(b[1] for b in base))
        fastest = [min(fastest[0], *(b[1] for b in mine)), min(fastest[1], *(b[1] for b in base))]
        plain_steps.extend(b[0] / steps for b in base)
    return wall, cpu, fastest, plain_steps


def command_line(args):
    return (f"python -m benchmarks.bench_methods --arch {args.arch} --image_size "
            f"{args.image_size} --batch_size {args.batch_size} --steps {args.steps} "
            f"--repetitions {args.repetitions} --threads {args.threads}"
            + ("" if args.methods == LOSS_METHODS + OTHER_METHODS
               else f" --methods {','.join(args.methods)}") + " --write")


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from benchmarks import report as benchmark_report
    if args.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    size, batch = args.image_size, args.batch_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, TARGET_CLASSES, batch)
    start = time.perf_counter()
    load = os.getloadavg()[0]
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, "
               f"{len(tf.config.list_physical_devices('GPU'))} GPU(s), TensorFlow "
               f"{tf.__version__}, Keras {keras.__version__}, {args.threads or 'default'} "
               f"thread(s), load average {load:.1f} at the start")
    logging.info("%s %dx%d, batch %d, %d steps per block, %d repetitions; %s", args.arch,
                 size, size, batch, args.steps, args.repetitions, machine)
    plain = variant("plain", args.arch, x, y)
    timed_block(plain, 2)  # trace
    rows, plain_steps = [], []
    for name in args.methods:
        step = variant(name, args.arch, x, y)
        wall, cpu, fastest, steps = time_method(plain, step, args.steps, args.repetitions)
        plain_steps.extend(steps)
        rows.append((name, statistics.median(wall), statistics.median(cpu),
                     fastest[0] / fastest[1]))
        logging.info("%s: CPU-time ratios %s", name, ", ".join(f"{r:.3f}" for r in cpu))
        del step
        gc.collect()
    plain_ms = statistics.median(plain_steps) * 1e3
    table = ["| method | median wall-time ratio | median CPU-time ratio | fastest-block "
             "CPU ratio | note |", "|---|---|---|---|---|",
             f"| plain fine-tuning | 1 | 1 | 1 | {plain_ms:.0f} ms per step (median wall) |"]
    table += [f"| `{n}` | {w:.3f} | {c:.3f} | {f:.3f} | {PER_STEP_NOTE.get(n, '')} |"
              for n, w, c, f in rows]
    elapsed = time.perf_counter() - start
    print(f"({elapsed / 60:.1f} min; {machine})")
    benchmark_report.publish(f"bench_methods_{args.arch}", "\n".join([
        f"## Cost per train step of every method / plain fine-tuning ({args.arch}, "
        f"{size}x{size}x3, batch {batch})", "",
        f"Command: `{command_line(args)}`", "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC in "
        f"{elapsed / 60:.0f} min on {machine}. {args.repetitions} ABBA rounds of "
        f"{args.steps}-step blocks per method, all in one process; ratios are medians "
        "over the rounds, the fastest-block ratio is the least CPU time of a method "
        "block over the least of a plain block.", ""] + table), args.write)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
