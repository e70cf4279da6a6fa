"""Per-example squared gradients for the Fisher: the library route vs a per-example loop.

Every variant computes ``S(w) = sum_i (d/dw log p_{y_i}(x_i))**2`` over the same examples
and labels (labels drawn from the model, as in ``fisher.diagonal(mode="sampled")``) for
every trainable variable of the small ResNet (28x28x1 inputs, 10 classes, widths 16/32/64),
in inference mode:

- ``loop``: a compiled (tf.function) single-example gradient called once per example, the
  running sums kept inside the compiled function (no eager op per example);
- ``library``: ``tftransfer.fisher.squared_gradients``, the single-example gradient
  vectorised over the examples with ``tf.vectorized_map`` (pfor);
- ``batched gradient``: the gradient of the *summed* log-likelihood of a batch, no
  per-example gradients at all: what any per-example method costs at least, so
  ``loop / batched gradient`` bounds the speed-up any of them can reach;
- ``jacobian`` (``--jacobian``): ``GradientTape.jacobian(per-example log-likelihoods,
  variables, experimental_use_pfor=True)`` of the batch: one backward pass of the whole
  batch per example, so quadratic in the batch size (slow, off by default).

The batched variants run on batches of ``--batch_size``. Compilation is excluded (one
warm-up call of each), the variants alternate in ABBA order over the repetitions, and the
ratios are medians of the per-repetition ratios. Prints the figures; ``--write`` also
writes the ``bench_fisher`` section of BENCHMARKS.md.

    python -m benchmarks.bench_fisher [--examples 256] [--batch_size 64] [--repetitions 3]
        [--jacobian] [--write]
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np

# TensorFlow and tftransfer are imported where they are used, so that --help and a usage
# error never start TensorFlow.

REFERENCE = "library"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--jacobian", action="store_true",
                        help="also time GradientTape.jacobian (quadratic in the batch size)")
    parser.add_argument("--write", action="store_true",
                        help="write the bench_fisher section of BENCHMARKS.md")
    return parser.parse_args(argv)


def _variants(model, x, labels, batch_size, with_jacobian):
    """``{name: callable returning the list of per-variable sums as NumPy arrays}``."""
    import tensorflow as tf

    from tftransfer.fisher import squared_gradients
    variables = model.trainable_variables
    examples = int(x.shape[0])

    @tf.function(autograph=False)
    def single(xi, yi, totals):
        with tf.GradientTape() as tape:
            log_p = tf.nn.log_softmax(model(xi[None], training=False))[0, yi]
        return [t + tf.square(g) for t, g in zip(totals, tape.gradient(log_p, variables))]

    def loop():
        totals = [tf.zeros_like(v) for v in variables]
        for i in range(examples):
            totals = single(x[i], labels[i], totals)
        return [t.numpy() for t in totals]

    def log_likelihoods(xb, yb):
        log_p = tf.nn.log_softmax(model(xb, training=False))
        return tf.gather(log_p, yb, axis=1, batch_dims=1)

    def summed_gradient(xb, yb):
        with tf.GradientTape() as tape:
            objective = tf.reduce_sum(log_likelihoods(xb, yb))
        return tape.gradient(objective, variables)

    def jacobian(xb, yb):
        with tf.GradientTape() as tape:
            per_example = log_likelihoods(xb, yb)
        jac = tape.jacobian(per_example, variables, experimental_use_pfor=True)
        return [tf.reduce_sum(tf.square(j), axis=0) for j in jac]

    def batched(fn):
        compiled = tf.function(fn, autograph=False)

        def run():
            totals = None
            for start in range(0, examples, batch_size):
                sums = compiled(x[start:start + batch_size], labels[start:start + batch_size])
                totals = sums if totals is None else [a + b for a, b in zip(totals, sums)]
            return [t.numpy() for t in totals]
        return run

    variants = {
        "loop": loop,
        "library": batched(lambda xb, yb: squared_gradients(model, variables, xb, yb,
                                                            tf.ones(tf.shape(yb)))),
        "batched gradient": batched(summed_gradient),
    }
    if with_jacobian:
        variants["jacobian"] = batched(jacobian)
    return variants


def _relative_difference(result, reference):
    return max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))
               for a, b in zip(result, reference))


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from benchmarks import report as benchmark_report
    from tftransfer.models.small_resnet import small_resnet
    load = os.getloadavg()[0]
    tf.keras.utils.set_random_seed(0)
    model = small_resnet((28, 28, 1), num_classes=10, widths=(16, 32, 64))
    x = tf.random.normal([args.examples, 28, 28, 1], seed=1)
    labels = tf.random.stateless_categorical(model(x, training=False), 1, seed=[0, 0],
                                             dtype=tf.int32)[:, 0]
    variants = _variants(model, x, labels, args.batch_size, args.jacobian)
    results = {name: run() for name, run in variants.items()}  # compiles every variant
    errors = {name: _relative_difference(results[name], results["loop"])
              for name in variants if name != "batched gradient"}
    names = list(variants)
    times = {name: [] for name in names}
    for rep in range(args.repetitions):
        for name in (names if rep % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
        print(f"repetition {rep + 1}/{args.repetitions}: " + ", ".join(
            f"{name} {times[name][-1]:.3f}s" for name in names), flush=True)

    def median_ratio(numerator, denominator):
        return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))

    rows = []
    for name in names:
        over_loop = median_ratio("loop", name)
        vs_library = median_ratio(name, REFERENCE)
        error = f"{errors[name]:.1e}" if name in errors else "(not the same quantity)"
        rows.append(f"| {name} | {statistics.median(times[name]):.3f} | {over_loop:.2f}x | "
                    f"{vs_library:.2f} | {error} |")
    command = "python -m benchmarks.bench_fisher " + " ".join(
        f"--{k} {getattr(args, k)}" for k in ("examples", "batch_size", "repetitions")) + (
        " --jacobian" if args.jacobian else "")
    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    text = (
        "## Fisher: per-example squared gradients, library route vs a per-example loop\n\n"
        f"Small ResNet (28x28x1, widths 16/32/64, {parameters} trainable parameters), "
        f"{args.examples} examples, sampled labels, batch {args.batch_size}, "
        f"{args.repetitions} ABBA repetitions in one process. `loop`: a compiled "
        "single-example gradient per example; `library`: `tftransfer.fisher."
        "squared_gradients` (`tf.vectorized_map` of the single-example gradient, what "
        "`fisher.diagonal` uses); `batched gradient`: the gradient of the summed "
        "log-likelihood, no per-example gradients, a lower bound on any per-example "
        "method's time.\n\n"
        "| variant | median time (s) | speed-up over the loop (median ratio) | "
        "time / library (median ratio) | max relative difference to the loop |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Machine: {platform.machine()}, {len(tf.config.list_physical_devices('GPU'))} GPU(s), "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, load average {load:.1f} "
        "at start.\n\n"
        f"Rerun: `{command} --write`\n")
    benchmark_report.publish("bench_fisher", text, args.write)
    return {name: median_ratio("loop", name) for name in names}


if __name__ == "__main__":
    main()
