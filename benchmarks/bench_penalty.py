"""Train-step time of a ResNet-50 with L2-SP attached, divided by the same without.

Two identical ResNet-50s (keras.applications, random weights, the 1000-way head replaced by
a new one) are compiled in one process; one gets ``tftransfer.penalize(..., "l2_sp")``.
Timed blocks of ``--steps`` train steps alternate between the two, ``--repetitions``
times, in the order ABBA ABBA... so that a drift of the machine's speed hits both alike.
The median of the per-pair ratios is printed and written to BENCHMARKS.md.
The paper (Section 5.4) counts < 1% extra FLOPs per step.

    python -m benchmarks.bench_penalty [--batch_size 4] [--image_size 224] [--repetitions 15]
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
from benchmarks.report import update_section

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 4, "Images per train step.")
flags.DEFINE_integer("image_size", 224, "Input height and width.")
flags.DEFINE_integer("num_classes", 100, "Width of the new head.")
flags.DEFINE_integer("steps", 1, "Train steps per timed block.")
flags.DEFINE_integer("repetitions", 15, "Alternating timed blocks per model.")
flags.DEFINE_string("scheme", "l2_sp", "Penalty scheme of the penalised model.")
flags.DEFINE_boolean("write", True, "Write the result into BENCHMARKS.md.")


def resnet50_with_new_head(size, num_classes):
    base = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    features = base.get_layer("avg_pool").output
    logits = keras.layers.Dense(num_classes, name="new_head")(features)
    model = keras.Model(base.input, logits)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def timed_block(model, x, y, steps):
    """(wall seconds, process CPU seconds) of ``steps`` train steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss))  # waits for the last step
    return time.perf_counter() - wall, time.process_time() - cpu


def isolated_penalty_ratio(penalised, plain, x, y, repetitions=20):
    """Median time of the penalty's value and gradient alone / median plain train step.

    This is the extra work L2-SP adds to a step, measured without the noise of comparing
    two full steps of about a second each.
    """
    @tf.function
    def penalty_and_gradient():
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


def main(argv):
    del argv
    size, batch = FLAGS.image_size, FLAGS.batch_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, FLAGS.num_classes, batch)
    plain = resnet50_with_new_head(size, FLAGS.num_classes)
    penalised = resnet50_with_new_head(size, FLAGS.num_classes)
    plan = tftransfer.penalize(penalised, FLAGS.scheme, alpha=0.1, beta=0.01,
                               new_layers=["new_head"])
    print(f"{FLAGS.scheme}: {len(plan.inherited)} inherited kernels, {len(plan.new)} new; "
          "warming up (tracing both train steps)...", flush=True)
    for model in (plain, penalised):
        timed_block(model, x, y, 2)
    params = sum(int(np.prod(v.shape)) for v in penalised.trainable_variables)
    ratios, cpu_ratios = [], []
    for rep in range(FLAGS.repetitions):
        if rep % 2 == 0:
            t_plain = timed_block(plain, x, y, FLAGS.steps)
            t_pen = timed_block(penalised, x, y, FLAGS.steps)
        else:
            t_pen = timed_block(penalised, x, y, FLAGS.steps)
            t_plain = timed_block(plain, x, y, FLAGS.steps)
        ratios.append(t_pen[0] / t_plain[0])
        cpu_ratios.append(t_pen[1] / t_plain[1])
        print(f"repetition {rep + 1}/{FLAGS.repetitions}: {t_plain[0] / FLAGS.steps:.3f} s/step "
              f"plain, {t_pen[0] / FLAGS.steps:.3f} s/step {FLAGS.scheme}, wall ratio "
              f"{ratios[-1]:.4f}, CPU-time ratio {cpu_ratios[-1]:.4f}", flush=True)
    median, cpu_median = statistics.median(ratios), statistics.median(cpu_ratios)
    isolated = isolated_penalty_ratio(penalised, plain, x, y)
    print(f"isolated penalty value + gradient / plain train step: {isolated:.4f}")
    print(f"median step-time ratio {FLAGS.scheme} / none: wall {median:.4f}, "
          f"CPU time {cpu_median:.4f}")
    if FLAGS.write:
        command = (f"python -m benchmarks.bench_penalty --batch_size {batch} --image_size {size} "
                   f"--steps {FLAGS.steps} --repetitions {FLAGS.repetitions} "
                   f"--scheme {FLAGS.scheme}")
        path = update_section("bench_penalty", "\n".join([
            "## Cost of the penalty: ResNet-50 train step with L2-SP / without",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, TensorFlow "
            f"{tf.__version__}, Keras {keras.__version__}; batch {batch} at {size}x{size}, "
            f"{len(plan.inherited)} penalised kernels.",
            "",
            f"Per-repetition wall-time ratios: {', '.join(f'{r:.4f}' for r in ratios)}",
            "",
            f"Per-repetition CPU-time ratios: {', '.join(f'{r:.4f}' for r in cpu_ratios)}",
            "",
            f"**Median ratio: {median:.4f} wall time, {cpu_median:.4f} process CPU time** "
            "(paper, Section 5.4: < 1% extra FLOPs; target <= 1.03). CPU time is less "
            "disturbed by other processes on a shared machine.",
            "",
            f"**Isolated cost: {isolated:.4f}** = median time of the penalty's value and "
            "gradient alone (a compiled function) / median plain train step. This is the "
            "work L2-SP adds to a step, without the noise of comparing two full steps "
            "(the per-repetition ratios above scatter by about +-15% on this machine).",
            "",
            f"For scale: L2-SP costs about 6 FLOPs per penalised parameter and step "
            f"(difference, square, sum, scale; gradient: difference, scale), "
            f"{6 * params / 1e6:.0f} MFLOPs for {params / 1e6:.1f} M parameters, against "
            f"about 3 x 4.1 GFLOPs per 224x224 image for a ResNet-50 train step.",
        ]))
        print(f"written to {path}")


if __name__ == "__main__":
    app.run(main)
