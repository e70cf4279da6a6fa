"""Train-step time of a ResNet-50 with L2-SP attached, divided by the same without.

Identical ResNet-50s (keras.applications, random weights, the 1000-way head replaced by a
new one) are compiled in one process: a plain one and, for each of ``--paths``, one with
``tftransfer.penalize(..., "l2_sp", path=...)``: ``loss`` (the penalty in ``model.losses``,
differentiated) and ``fused`` (its closed-form gradient added in the optimizer step,
``tftransfer.fused_optimizer``). Timed blocks of ``--steps`` train steps visit the models in
one order and then the reverse (ABBA for two models, ABCCBA for three), ``--repetitions``
times, so that a drift of the machine's speed hits all alike. The medians of the
per-repetition ratios penalised / plain are printed, and written to BENCHMARKS.md with
``--write``. The paper (Section 5.4) counts < 1% extra FLOPs per step; the issue's target
for the fused path is <= 1.01.

    python -m benchmarks.bench_penalty [--batch_size 4] [--image_size 224] [--repetitions 15]
        [--paths loss,fused] [--write]
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np

# TensorFlow, Keras and tftransfer are imported where they are used, so that --help and a
# usage error never start TensorFlow.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=4, help="images per train step")
    parser.add_argument("--image_size", type=int, default=224, help="input height and width")
    parser.add_argument("--num_classes", type=int, default=100, help="width of the new head")
    parser.add_argument("--steps", type=int, default=1, help="train steps per timed block")
    parser.add_argument("--repetitions", type=int, default=15,
                        help="alternating timed blocks per model")
    parser.add_argument("--scheme", default="l2_sp",
                        help="penalty scheme of the penalised model")
    parser.add_argument("--paths", type=lambda text: text.split(","), default=["loss", "fused"],
                        help="comma-separated penalty paths compared with the plain model "
                        "(tftransfer.penalty.PATHS)")
    parser.add_argument("--write", action="store_true",
                        help="also write the result into BENCHMARKS.md")
    return parser.parse_args(argv)


def resnet50_with_new_head(size, num_classes, scheme=None, path="loss"):
    """The compiled ResNet-50 and its plan (None without ``scheme``)."""
    import keras

    import tftransfer
    base = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    features = base.get_layer("avg_pool").output
    logits = keras.layers.Dense(num_classes, name="new_head")(features)
    model = keras.Model(base.input, logits)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    plan = None
    if scheme is not None:
        plan = tftransfer.penalize(model, scheme, alpha=0.1, beta=0.01,
                                   new_layers=["new_head"], path=path)
        if path == "fused":
            optimizer = tftransfer.fused_optimizer(optimizer, plan)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, plan


def timed_block(model, x, y, steps):
    """(wall seconds, process CPU seconds) of ``steps`` train steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss))  # waits for the last step
    return time.perf_counter() - wall, time.process_time() - cpu


def isolated_penalty_ratio(penalised, plan, plain, x, y, repetitions=20):
    """Median time of the penalty's value and gradient alone / median plain train step.

    This is the extra work L2-SP adds to a step, measured without the noise of comparing
    two full steps of about a second each: automatic differentiation of
    ``sum(model.losses)`` on the loss path, the regularizers' closed-form
    ``value_and_gradient`` on the fused path (plus the gradient sum it feeds).
    """
    import tensorflow as tf
    variables = {v.path: v for v in penalised.trainable_variables}

    @tf.function
    def penalty_and_gradient():
        if plan.path == "fused":
            pairs = [r.value_and_gradient(variables[p]) for p, r in plan.regularizers.items()]
            return tf.add_n([v for v, _ in pairs]), [g + 1.0 for _, g in pairs]
        with tf.GradientTape() as tape:
            penalty = tf.add_n(penalised.losses)
        return penalty, tape.gradient(penalty, penalised.trainable_variables)

    def timed(fn):
        start = time.perf_counter()
        float(np.asarray(fn()))
        return time.perf_counter() - start

    penalty_and_gradient()  # trace
    penalty_times = [timed(lambda: penalty_and_gradient()[0]) for _ in range(repetitions)]
    step_times = [timed(lambda: plain.train_on_batch(x, y)) for _ in range(5)]
    return statistics.median(penalty_times) / statistics.median(step_times)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from benchmarks import report as benchmark_report
    from tftransfer.penalty import PATHS
    size, batch, scheme = args.image_size, args.batch_size, args.scheme
    unknown = [p for p in args.paths if p not in PATHS]
    if unknown or not args.paths:
        raise SystemExit(f"--paths: expected some of {PATHS}, got {args.paths}.")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, args.num_classes, batch)
    plain, _ = resnet50_with_new_head(size, args.num_classes)
    penalised = {p: resnet50_with_new_head(size, args.num_classes, scheme, p)
                 for p in args.paths}
    plan = next(iter(penalised.values()))[1]
    print(f"{scheme}: {len(plan.inherited)} inherited kernels, {len(plan.new)} new; paths "
          f"{args.paths}; warming up (tracing the train steps)...", flush=True)
    models = {"plain": plain, **{p: m for p, (m, _) in penalised.items()}}
    for model in models.values():
        timed_block(model, x, y, 2)
    params = sum(int(np.prod(v.shape)) for v in plain.trainable_variables)
    ratios = {p: [] for p in penalised}
    cpu_ratios = {p: [] for p in penalised}
    names = list(models)
    for rep in range(args.repetitions):
        order = names if rep % 2 == 0 else names[::-1]
        times = {name: timed_block(models[name], x, y, args.steps) for name in order}
        line = [f"repetition {rep + 1}/{args.repetitions}: plain "
                f"{times['plain'][0] / args.steps:.3f} s/step"]
        for p in penalised:
            ratios[p].append(times[p][0] / times["plain"][0])
            cpu_ratios[p].append(times[p][1] / times["plain"][1])
            line.append(f"{p} {times[p][0] / args.steps:.3f} s/step (wall ratio "
                        f"{ratios[p][-1]:.4f}, CPU-time ratio {cpu_ratios[p][-1]:.4f})")
        print(", ".join(line), flush=True)
    command = (f"python -m benchmarks.bench_penalty --batch_size {batch} --image_size {size} "
               f"--steps {args.steps} --repetitions {args.repetitions} --scheme {scheme} "
               f"--paths {','.join(args.paths)}")
    lines = [
        f"## Cost of the penalty: ResNet-50 train step with {scheme} / without",
        "",
        f"Command: `{command} --write`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, TensorFlow "
        f"{tf.__version__}, Keras {keras.__version__}; batch {batch} at {size}x{size}, "
        f"{len(plan.inherited)} penalised kernels. Paths: `loss` = the penalty in "
        "`model.losses`, differentiated; `fused` = its closed-form gradient added in the "
        "optimizer step (`penalize(..., path=\"fused\")` + `tftransfer.fused_optimizer`).",
        "",
        "| path | median wall-time ratio | median CPU-time ratio | isolated cost |",
        "|---|---|---|---|",
    ]
    for p, (model, path_plan) in penalised.items():
        median, cpu_median = statistics.median(ratios[p]), statistics.median(cpu_ratios[p])
        isolated = isolated_penalty_ratio(model, path_plan, plain, x, y)
        print(f"{p}: median step-time ratio {scheme} / none: wall {median:.4f}, CPU time "
              f"{cpu_median:.4f}; isolated penalty value + gradient / plain train step: "
              f"{isolated:.4f}")
        lines.append(f"| `{p}` | {median:.4f} | {cpu_median:.4f} | {isolated:.4f} |")
    for p in penalised:
        lines += ["", f"Per-repetition wall-time ratios, `{p}`: "
                  f"{', '.join(f'{r:.4f}' for r in ratios[p])}",
                  "", f"Per-repetition CPU-time ratios, `{p}`: "
                  f"{', '.join(f'{r:.4f}' for r in cpu_ratios[p])}"]
    lines += [
        "",
        "Target (paper, Section 5.4: < 1% extra FLOPs): <= 1.03 on the loss path, <= 1.01 "
        "on the fused path. CPU time is less disturbed by other processes on a shared "
        "machine. **Isolated cost** = median time of the penalty's value and gradient alone "
        "(a compiled function) / median plain train step: the work the penalty adds to a "
        "step, without the noise of comparing two full steps.",
        "",
        f"For scale: L2-SP costs about 6 FLOPs per penalised parameter and step "
        f"(difference, square, sum, scale; gradient: difference, scale), "
        f"{6 * params / 1e6:.0f} MFLOPs for {params / 1e6:.1f} M parameters, against "
        f"about 3 x 4.1 GFLOPs per 224x224 image for a ResNet-50 train step.",
    ]
    print(f"rerun: {command}")
    benchmark_report.publish("bench_penalty", "\n".join(lines), args.write)


if __name__ == "__main__":
    main()
