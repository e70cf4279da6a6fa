"""Train-step time of a ResNet-50 with L2-SP attached, divided by the same without.

Two identical ResNet-50s (keras.applications, random weights, the 1000-way head replaced by
a new one) are compiled in one process; one gets ``tftransfer.penalize(..., "l2_sp")``.
Timed blocks of ``--steps`` train steps alternate between the two, ``--repetitions``
times; the median of the per-repetition ratios is printed and written to BENCHMARKS.md.
The paper (Section 5.4) counts < 1% extra FLOPs per step.

    python tools/bench_penalty.py [--batch_size 4] [--image_size 224] [--repetitions 5]
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
from tftransfer.benchmark_report import update_section

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 4, "Images per train step.")
flags.DEFINE_integer("image_size", 224, "Input height and width.")
flags.DEFINE_integer("num_classes", 100, "Width of the new head.")
flags.DEFINE_integer("steps", 3, "Train steps per timed block.")
flags.DEFINE_integer("repetitions", 5, "Alternating timed blocks per model.")
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
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss))  # waits for the last step
    return time.perf_counter() - start


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
    ratios = []
    for rep in range(FLAGS.repetitions):
        t_plain = timed_block(plain, x, y, FLAGS.steps)
        t_pen = timed_block(penalised, x, y, FLAGS.steps)
        ratios.append(t_pen / t_plain)
        print(f"repetition {rep + 1}/{FLAGS.repetitions}: {t_plain / FLAGS.steps:.3f} s/step "
              f"plain, {t_pen / FLAGS.steps:.3f} s/step {FLAGS.scheme}, ratio "
              f"{ratios[-1]:.4f}", flush=True)
    median = statistics.median(ratios)
    print(f"median step-time ratio {FLAGS.scheme} / none: {median:.4f}")
    if FLAGS.write:
        command = (f"python tools/bench_penalty.py --batch_size {batch} --image_size {size} "
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
            f"Per-repetition ratios: {', '.join(f'{r:.4f}' for r in ratios)}",
            "",
            f"**Median ratio: {median:.4f}** (paper, Section 5.4: < 1% extra FLOPs; "
            "target <= 1.03).",
        ]))
        print(f"written to {path}")


if __name__ == "__main__":
    app.run(main)
