"""Cost per train step of helper G's methods, relative to plain fine-tuning, in one process.

Identical models (same architecture and seed, the classifier ``predictions`` new) are built
and compiled in one process: plain fine-tuning (SGD, momentum 0.9) and one model per method:

- ``stochnorm``: batch norm swapped for StochNorm (p = 0.5);
- ``mars_pgm`` / ``frobenius_pgm``: the same SGD wrapped to project every inherited kernel;
- ``spd``: the same SGD wrapped with selective projection decay of every trainable variable;
- ``l2_sp_k`` / ``group_lasso_sp_layer``: the weight penalties (and, for reference,
  ``l2_sp``, the paper's penalty);
- ``lp_ft``: a phase-1 step (the head on cached features) — phase 2 is plain fine-tuning;
- ``wise_ft``: one interpolation of all weights and its assignment (once per grid point,
  not per step).

For each repetition and variant, timed blocks of ``--steps`` steps run back to back in the
order plain, method, method, plain (ABBA, so that a drift of the machine's speed hits both
alike); the ratio of the method's two blocks to the two plain blocks is one sample. Printed:
the median ratio in wall time and in process CPU time (less disturbed by other processes on
a shared machine), and the ratio of the fastest method block to the fastest plain block
(CPU time: the least disturbed estimate of the intrinsic cost).

    python -m benchmarks.bench_methods_g [--arch small_resnet] [--image_size 28]
        [--batch_size 32] [--steps 5] [--repetitions 9] [--methods stochnorm,spd,...]
"""
import os
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import tftransfer
from tftransfer.methods import (group_lasso_sp_layer, l2_sp_k, lp_ft, mars_pgm, spd,
                                stochnorm, wise_ft)
from tftransfer.models.build import build

FLAGS = flags.FLAGS
flags.DEFINE_string("arch", "small_resnet", "small_resnet or resnet50 (random weights).")
flags.DEFINE_integer("image_size", 28, "Input height and width.")
flags.DEFINE_integer("batch_size", 32, "Images per train step.")
flags.DEFINE_integer("num_classes", 10, "Width of the new head.")
flags.DEFINE_integer("steps", 5, "Train steps per timed block.")
flags.DEFINE_integer("repetitions", 9, "Rounds over the variants.")
flags.DEFINE_list("methods", ["stochnorm", "mars_pgm", "frobenius_pgm", "spd", "l2_sp_k",
                              "group_lasso_sp_layer", "l2_sp", "lp_ft", "wise_ft"],
                  "Variants timed against plain fine-tuning.")
flags.DEFINE_boolean("write", False, "Write the result into BENCHMARKS.md (section "
                     "bench_methods_g).")

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model():
    keras.utils.set_random_seed(0)
    channels = 1 if FLAGS.arch == "small_resnet" else 3
    return build(FLAGS.arch, FLAGS.num_classes, "none", seed=0,
                 input_shape=(FLAGS.image_size, FLAGS.image_size, channels)).model


def _sgd():
    return keras.optimizers.SGD(0.01, momentum=0.9)


def _compiled(model, optimizer=None):
    model.compile(optimizer or _sgd(), LOSS)
    return model


def _train_step(model, x, y):
    return lambda: model.train_on_batch(x, y)


def variant(name, x, y):
    """A function running one step (or one unit of work) of ``name``."""
    new = ["predictions"]
    if name == "plain":
        return _train_step(_compiled(_model()), x, y)
    if name == "stochnorm":
        return _train_step(_compiled(stochnorm.swap_batch_norm(_model(), p=0.5, seed=0)), x, y)
    if name in ("mars_pgm", "frobenius_pgm"):
        model = _model()
        norm = "mars" if name == "mars_pgm" else "frobenius"
        optimizer = mars_pgm.with_mars_pgm(_sgd(), model, gamma=5.0, new_layers=new, norm=norm)
        return _train_step(_compiled(model, optimizer), x, y)
    if name == "spd":
        model = _model()
        return _train_step(_compiled(model, spd.with_spd(_sgd(), model, strength=1.0)), x, y)
    if name == "l2_sp_k":
        model = _model()
        l2_sp_k.penalize_l2_sp_k(model, 0.1, 0.01, new_layers=new)
        return _train_step(_compiled(model), x, y)
    if name == "group_lasso_sp_layer":
        model = _model()
        group_lasso_sp_layer.penalize_group_lasso_sp_layer(model, 0.1, 0.01, new_layers=new)
        return _train_step(_compiled(model), x, y)
    if name == "l2_sp":
        model = _model()
        tftransfer.penalize(model, "l2_sp", 0.1, 0.01, new_layers=new)
        return _train_step(_compiled(model), x, y)
    if name == "lp_ft":
        model = _model()
        feats = lp_ft.feature_model(model).predict(x, verbose=0)
        inputs = keras.Input(feats.shape[1:])
        probe = _compiled(keras.Model(inputs, model.get_layer("predictions")(inputs)),
                          keras.optimizers.Adam(0.01))
        return _train_step(probe, feats, y)
    if name == "wise_ft":
        model = _model()
        theta_0 = wise_ft.snapshot(model)
        theta_1 = {p: v + 0.01 for p, v in theta_0.items()}

        def mix():
            wise_ft.assign(model, wise_ft.interpolate(theta_0, theta_1, 0.5))
            return np.zeros(())
        return mix
    raise ValueError(f"unknown variant {name!r}")


def timed_block(step, steps):
    """(wall seconds, process CPU seconds) of ``steps`` calls of ``step``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        out = step()
    float(np.asarray(out).reshape(-1)[0])  # waits for the last step
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    channels = 1 if FLAGS.arch == "small_resnet" else 3
    x = rng.uniform(0, 1, (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, channels)
                    ).astype(np.float32)
    y = rng.integers(0, FLAGS.num_classes, FLAGS.batch_size)
    names = ["plain"] + [m for m in FLAGS.methods if m != "plain"]
    steps = {name: variant(name, x, y) for name in names}
    print(f"{FLAGS.arch} {FLAGS.image_size}px, batch {FLAGS.batch_size}; warming up "
          f"{len(names)} variants...", flush=True)
    for step in steps.values():
        timed_block(step, 2)
    wall = {n: [] for n in names[1:]}
    cpu = {n: [] for n in names[1:]}
    best = {n: np.inf for n in names}  # fastest block of each variant (process CPU time)
    plain_times = []
    for rep in range(FLAGS.repetitions):
        for name in names[1:]:  # A B B A: plain, method, method, plain, back to back
            blocks = [timed_block(steps[n], FLAGS.steps) for n in ("plain", name, name, "plain")]
            plain = [blocks[0], blocks[3]]
            mine = [blocks[1], blocks[2]]
            wall[name].append(sum(b[0] for b in mine) / sum(b[0] for b in plain))
            cpu[name].append(sum(b[1] for b in mine) / sum(b[1] for b in plain))
            best[name] = min(best[name], *(b[1] for b in mine))
            best["plain"] = min(best["plain"], *(b[1] for b in plain))
            plain_times.extend(b[0] / FLAGS.steps for b in plain)
        print(f"repetition {rep + 1}/{FLAGS.repetitions}: " + ", ".join(
            f"{n} {cpu[n][-1]:.3f}" for n in names[1:]) + " (CPU-time ratios)", flush=True)
    rows = [(n, statistics.median(wall[n]), statistics.median(cpu[n]), best[n] / best["plain"])
            for n in names[1:]]
    print(f"\nplain fine-tuning: median {statistics.median(plain_times) * 1e3:.1f} ms/step")
    print(f"{'method':24s} {'wall':>8s} {'CPU':>8s} {'fastest':>8s}  (ratios to plain)")
    for name, w, c, f in rows:
        print(f"{name:24s} {w:8.3f} {c:8.3f} {f:8.3f}")
    if FLAGS.write:
        from benchmarks.report import update_section
        command = (f"python -m benchmarks.bench_methods_g --arch {FLAGS.arch} --image_size "
                   f"{FLAGS.image_size} --batch_size {FLAGS.batch_size} --steps {FLAGS.steps} "
                   f"--repetitions {FLAGS.repetitions}")
        table = ["| method | wall ratio | CPU-time ratio | fastest-block ratio |",
                 "|---|---|---|---|"] + [
            f"| {n} | {w:.3f} | {c:.3f} | {f:.3f} |" for n, w, c, f in rows]
        path = update_section(f"bench_methods_g_{FLAGS.arch}", "\n".join([
            f"## Cost per step of StochNorm, MARS-PGM, SPD, L2-SP-k, GL-SP-layer, LP-FT, "
            f"WiSE-FT / plain fine-tuning ({FLAGS.arch})", "", f"Command: `{command}`", "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, TensorFlow "
            f"{tf.__version__}, Keras {keras.__version__}; plain step "
            f"{statistics.median(plain_times) * 1e3:.1f} ms.", ""] + table))
        print(f"written to {path}")


if __name__ == "__main__":
    app.run(main)
