"""Train-step time of each loss method (delta_fm, delta, bss, lwf, co_tuning) divided by
plain fine-tuning's, in one process.

The target network (the small ResNet by default, or a keras.applications ResNet-50 with
``--arch resnet50``; random weights, a 10-class source head kept aside and a 4-class
target head) is compiled once plain and once per method, wrapped in its
``tftransfer.methods.loss_terms.LossTermModel`` (DELTA with a given uniform attention and
Co-Tuning with a given relationship: what they compute once before training is not part of
a step). For each method, timed blocks of ``--steps`` train steps alternate with blocks of
the plain model, ``--repetitions`` times, in the order ABBA... so that a drift of the
machine's speed hits both alike; printed: the medians of the per-pair ratios (wall and
process CPU time) and the ratio of the least CPU time of a block (other processes only ever
add time, so the least is the steadiest on a shared machine). TensorFlow runs on
``--threads`` threads (default 1, so that CPU time is the work, not spinning).

    python -m benchmarks.bench_methods_f [--arch small_resnet] [--image_size 32]
        [--batch_size 32] [--steps 5] [--repetitions 11] [--threads 1]
"""
import gc
import os
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from tftransfer.methods import bss, co_tuning, delta, loss_terms, lwf
from tftransfer.models.build import copy_head
from tftransfer.models.small_resnet import small_resnet

FLAGS = flags.FLAGS
flags.DEFINE_enum("arch", "small_resnet", ["small_resnet", "resnet50"], "Network.")
flags.DEFINE_integer("batch_size", 32, "Images per train step.")
flags.DEFINE_integer("image_size", 32, "Input height and width.")
flags.DEFINE_integer("steps", 5, "Train steps per timed block.")
flags.DEFINE_integer("repetitions", 11, "Timed blocks per model and method.")
flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads (1: the process "
                     "does one thing at a time, so its CPU time is the work).")
flags.DEFINE_list("methods", ["delta_fm", "delta", "bss", "lwf", "co_tuning"],
                  "Methods to time.")

SOURCE_CLASSES, TARGET_CLASSES = 10, 4


def transfer(arch, size, seed=0):
    """(target model, kept source head), the same weights for every call."""
    keras.utils.set_random_seed(seed)
    if arch == "small_resnet":
        source = small_resnet((size, size, 3), SOURCE_CLASSES, name="source")
    else:
        source = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                             classes=SOURCE_CLASSES,
                                             classifier_activation=None)
    features = source.get_layer("predictions").input
    head = keras.layers.Dense(TARGET_CLASSES, name="predictions")
    target = keras.Model(source.input, head(features), name="target")
    return target, copy_head(source.get_layer("predictions"), features.shape[-1])


def method_model(name, target, source_head):
    layers = delta.default_feature_layers(target)
    if name == "delta_fm":
        terms = [delta.FeatureMapDistance(layers, 0.01)]
    elif name == "delta":
        widths = {l: target.get_layer(l).output.shape[-1] for l in layers}
        terms = [delta.FeatureMapDistance(layers, 0.01,
                                          {l: np.full(c, 1.0 / c) for l, c in widths.items()})]
    elif name == "bss":
        terms = [bss.BatchSpectralShrinkage(1e-3, 1)]
    elif name == "lwf":
        terms = [lwf.LearningWithoutForgetting(1.0, 2.0)]
    elif name == "co_tuning":
        rng = np.random.default_rng(0)
        relationship = co_tuning.relationship(rng.normal(size=(64, SOURCE_CLASSES)),
                                              np.arange(64) % TARGET_CLASSES, TARGET_CLASSES)
        terms = [co_tuning.CoTuningLoss(relationship, 2.3)]
    else:
        raise ValueError(f"unknown method {name!r}")
    return loss_terms.LossTermModel(target, terms, source_head=source_head)


def compiled(model):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def timed_block(model, x, y, steps):
    """(wall seconds, process CPU seconds) of ``steps`` train steps."""
    gc.collect()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = model.train_on_batch(x, y, return_dict=True)["loss"]
        float(np.asarray(loss))  # waits for the last step
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()


def main(argv):
    del argv
    if FLAGS.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    size, batch = FLAGS.image_size, FLAGS.batch_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, TARGET_CLASSES, batch)
    plain = compiled(transfer(FLAGS.arch, size)[0])
    timed_block(plain, x, y, 2)  # trace
    print(f"{FLAGS.arch} {size}x{size}, batch {batch}, {FLAGS.steps} steps per block, "
          f"{FLAGS.repetitions} repetitions; {platform.machine()}, {os.cpu_count()} cores, "
          f"{len(tf.config.list_physical_devices('GPU'))} GPU(s), TensorFlow "
          f"{tf.__version__}, Keras {keras.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for name in FLAGS.methods:
        model = compiled(method_model(name, *transfer(FLAGS.arch, size)))
        timed_block(model, x, y, 2)  # trace
        for warm in (plain, model, model, plain):  # one untimed ABBA round
            timed_block(warm, x, y, FLAGS.steps)
        wall, cpu, plain_step, plain_cpu, method_cpu = [], [], [], [], []
        for rep in range(FLAGS.repetitions):
            if rep % 2 == 0:
                t_plain = timed_block(plain, x, y, FLAGS.steps)
                t_method = timed_block(model, x, y, FLAGS.steps)
            else:
                t_method = timed_block(model, x, y, FLAGS.steps)
                t_plain = timed_block(plain, x, y, FLAGS.steps)
            wall.append(t_method[0] / t_plain[0])
            cpu.append(t_method[1] / t_plain[1])
            plain_step.append(t_plain[0] / FLAGS.steps)
            plain_cpu.append(t_plain[1])
            method_cpu.append(t_method[1])
        rows.append((name, statistics.median(plain_step), statistics.median(wall),
                     statistics.median(cpu), min(method_cpu) / min(plain_cpu)))
        print(f"{name}: wall ratios {', '.join(f'{r:.3f}' for r in wall)}", flush=True)
    print("\n| method | plain step (s, median wall) | median wall-time ratio | "
          "median CPU-time ratio | min CPU time / min CPU time |")
    print("|---|---|---|---|---|")
    for name, step, wall, cpu, least in rows:
        print(f"| {name} | {step:.4f} | {wall:.3f} | {cpu:.3f} | {least:.3f} |")


if __name__ == "__main__":
    app.run(main)
