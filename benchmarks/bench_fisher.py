"""Per-example squared gradients for the Fisher: vectorised engine vs a per-example loop.

Both compute ``sum_i (d/dw log p_{y_i}(x_i))**2`` over the same examples and labels (labels
drawn from the model, as in ``fisher.diagonal(mode="sampled")``) for every trainable
variable of the small ResNet (28x28x1 inputs, 10 classes, widths 16/32/64), in inference
mode. The loop calls a compiled (tf.function) single-example gradient once per example;
the vectorised engine (tftransfer.per_example) does one batched forward/backward pass and
closed-form per-example weight gradients. Compilation is excluded (warm-up), timed blocks
alternate, and the median of the per-repetition ratios is written to BENCHMARKS.md.

    python -m benchmarks.bench_fisher [--examples 256] [--batch_size 64] [--repetitions 3]
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np
import tensorflow as tf

from benchmarks import report as benchmark_report
from tftransfer.models.small_resnet import small_resnet
from tftransfer.per_example import SquaredGradients


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--no_report", action="store_true", help="do not write BENCHMARKS.md")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    load = os.getloadavg()[0]
    tf.keras.utils.set_random_seed(0)
    model = small_resnet((28, 28, 1), num_classes=10, widths=(16, 32, 64))
    variables = model.trainable_variables
    x = tf.random.normal([args.examples, 28, 28, 1], seed=1)
    labels = tf.random.stateless_categorical(model(x, training=False), 1, seed=[0, 0],
                                             dtype=tf.int32)[:, 0]
    engine = SquaredGradients(model, variables)
    batched = tf.function(lambda xb, yb: engine(xb, yb, tf.ones(tf.shape(yb))),
                          autograph=False)

    @tf.function(autograph=False)
    def single(xi, yi):
        with tf.GradientTape() as tape:
            log_p = tf.nn.log_softmax(model(xi[None], training=False))[0, yi]
        return [tf.square(g) for g in tape.gradient(log_p, variables)]

    def run_vectorised():
        totals = None
        for start in range(0, args.examples, args.batch_size):
            sums = batched(x[start:start + args.batch_size], labels[start:start + args.batch_size])
            totals = sums if totals is None else [a + b for a, b in zip(totals, sums)]
        return [t.numpy() for t in totals]

    def run_loop():
        totals = None
        for i in range(args.examples):
            sq = single(x[i], labels[i])
            totals = sq if totals is None else [a + b for a, b in zip(totals, sq)]
        return [t.numpy() for t in totals]

    vec, loop = run_vectorised(), run_loop()  # compile both
    error = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))
                for a, b in zip(vec, loop))
    ratios, times = [], []
    for rep in range(args.repetitions):
        start = time.perf_counter()
        run_loop()
        t_loop = time.perf_counter() - start
        start = time.perf_counter()
        run_vectorised()
        t_vec = time.perf_counter() - start
        ratios.append(t_loop / t_vec)
        times.append((t_loop, t_vec))
        print(f"repetition {rep + 1}/{args.repetitions}: loop {t_loop:.2f}s, "
              f"vectorised {t_vec:.2f}s, ratio {t_loop / t_vec:.2f}")
    ratio = statistics.median(ratios)
    t_loop, t_vec = (statistics.median(t[i] for t in times) for i in (0, 1))
    command = "python -m benchmarks.bench_fisher " + " ".join(
        f"--{k} {getattr(args, k)}" for k in ("examples", "batch_size", "repetitions"))
    text = (
        "## Fisher: vectorised per-example gradients vs a per-example loop\n\n"
        f"Small ResNet (28x28x1, widths 16/32/64, {sum(int(np.prod(v.shape)) for v in variables)}"
        f" trainable parameters), {args.examples} examples, sampled labels, batch "
        f"{args.batch_size}; the loop calls a compiled single-example gradient.\n\n"
        "| loop (s) | vectorised (s) | speed-up (median of per-repetition ratios) |\n"
        "|---|---|---|\n"
        f"| {t_loop:.2f} | {t_vec:.2f} | **{ratio:.1f}x** |\n\n"
        f"Max relative difference between the two results: {error:.1e}. "
        f"Machine: {platform.machine()}, {len(tf.config.list_physical_devices('GPU'))} GPU(s), "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, load average {load:.1f} "
        "at start.\n\n"
        f"Rerun: `{command}`\n")
    print(f"median speed-up {ratio:.2f}x (max relative difference {error:.1e})")
    if not args.no_report:
        print("updated", benchmark_report.update_section("bench_fisher", text))
    return ratio


if __name__ == "__main__":
    main()
