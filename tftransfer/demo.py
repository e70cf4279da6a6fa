"""The paper's question at CPU scale: does L2-SP beat L2 when fine-tuning on little data?

Source task: Fashion-MNIST classes 0-4 (tops and trousers); a small ResNet is pretrained on
them and cached. Target task: classes 5-9 (footwear and bags) with a few labelled images per
class. Methods: plain fine-tuning (``none``), ``l2`` (weight decay toward 0) and ``l2_sp``
(toward the pretrained weights), each with L2(beta) on the new head, and training from
scratch. The strength alpha of ``l2`` and ``l2_sp`` is chosen on a validation split carved
from the target training images (never on the test set); the chosen setting is then trained
on all labelled images with several seeds and evaluated on the 5000 test images of
classes 5-9.

    python -m tftransfer.demo [--data_dir DIR] [--output_dir DIR] [--examples_per_class 20]
"""
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import tftransfer
from tftransfer.data import fashion_mnist
from tftransfer.io_utils import atomic_write_json, atomic_write_text
from tftransfer.models.small_resnet import small_resnet

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Directory with the Fashion-MNIST IDX files "
                    "(default: Keras cache, then /usr/share/datasets/fashion-mnist).")
flags.DEFINE_string("output_dir", os.path.join("runs", "demo"),
                    "Where the cached source model and the results go.")
flags.DEFINE_integer("examples_per_class", 20, "Labelled target training images per class.")
flags.DEFINE_integer("seeds", 3, "Seeds of the final runs (mean +- std over them).")
flags.DEFINE_list("alpha_grid", ["1e-4", "1e-3", "1e-2", "0.1", "1"],
                  "Strengths alpha tried for l2 and l2_sp on the validation split (includes "
                  "the authors' defaults: 1e-4 for l2, 0.1 for l2_sp).")
flags.DEFINE_float("beta", 0.01, "Strength of L2 on the new head (the paper's value).")
flags.DEFINE_float("val_fraction", 0.25, "Share of the labelled target images held out to "
                   "choose alpha.")
flags.DEFINE_integer("finetune_steps", 300, "SGD iterations per fine-tuning run.")
flags.DEFINE_integer("batch_size", 32, "Fine-tuning batch size.")
flags.DEFINE_float("learning_rate", 0.01, "Fine-tuning learning rate (divided by 10 at 2/3).")
flags.DEFINE_integer("pretrain_epochs", 3, "Epochs of source pretraining.")
flags.DEFINE_multi_enum("methods", ["scratch", "none", "l2", "l2_sp"],
                        ["scratch", "none", "l2", "l2_sp"], "Methods to compare.")

SOURCE_CLASSES, TARGET_CLASSES = tuple(range(5)), tuple(range(5, 10))
TUNED = ("l2", "l2_sp")
HEAD = "predictions"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def to_float(images):
    """uint8 [N, 28, 28] -> float32 [N, 28, 28, 1] in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., None]


def sgd(learning_rate, steps):
    """SGD, momentum 0.9, learning rate divided by 10 after 2/3 of the steps (RECIPE.md)."""
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(steps * 2 / 3)], [learning_rate, learning_rate / 10])
    return keras.optimizers.SGD(schedule, momentum=0.9)


def compile_classifier(model, optimizer):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def pretrain_source(data, output_dir):
    """The source model's weights, trained on classes 0-4 or loaded from the cache."""
    path = os.path.join(output_dir, f"source-e{FLAGS.pretrain_epochs}.weights.h5")
    model = small_resnet(num_classes=len(SOURCE_CLASSES), name="source")
    if os.path.exists(path):
        log(f"source model: loading cached weights {path}")
        model.load_weights(path)
        return model
    x, y = fashion_mnist.select_classes(*data["train"], SOURCE_CLASSES)
    steps = FLAGS.pretrain_epochs * -(-len(x) // 128)
    log(f"source model: pretraining on {len(x)} images of classes 0-4, "
        f"{FLAGS.pretrain_epochs} epochs ({steps} steps)")
    keras.utils.set_random_seed(0)
    compile_classifier(model, sgd(0.05, steps))
    model.fit(to_float(x), y, batch_size=128, epochs=FLAGS.pretrain_epochs, verbose=2)
    xt, yt = fashion_mnist.select_classes(*data["test"], SOURCE_CLASSES)
    _, accuracy = model.evaluate(to_float(xt), yt, batch_size=500, verbose=0)
    log(f"source model: test accuracy on classes 0-4 = {accuracy:.4f}; caching to {path}")
    os.makedirs(output_dir, exist_ok=True)
    model.save_weights(path)
    return model


def target_splits(data, seed=0):
    """Labelled target images (per-class subsample), a validation split of them, the test set."""
    x, y = fashion_mnist.select_classes(*data["train"], TARGET_CLASSES)
    rng = np.random.default_rng(seed)
    n_val = int(round(FLAGS.examples_per_class * FLAGS.val_fraction))
    if not 0 < n_val < FLAGS.examples_per_class:
        raise app.UsageError(f"--val_fraction={FLAGS.val_fraction} leaves no training or no "
                             f"validation image out of {FLAGS.examples_per_class} per class.")
    train_idx, val_idx = [], []
    for c in range(len(TARGET_CLASSES)):
        chosen = rng.choice(np.flatnonzero(y == c), FLAGS.examples_per_class, replace=False)
        val_idx.extend(chosen[:n_val])
        train_idx.extend(chosen[n_val:])
    xt, yt = fashion_mnist.select_classes(*data["test"], TARGET_CLASSES)
    labelled = np.concatenate([train_idx, val_idx])
    return {"fit": (to_float(x[train_idx]), y[train_idx]),
            "val": (to_float(x[val_idx]), y[val_idx]),
            "all": (to_float(x[labelled]), y[labelled]),
            "test": (to_float(xt), yt)}


class Runner:
    """Fine-tunes one compiled model per (method, alpha), reset between runs, never rebuilt."""

    def __init__(self, source):
        self.source_weights = {layer.name: layer.get_weights() for layer in source.layers
                               if layer.name != HEAD}
        self.models = {}

    def model_for(self, method, alpha):
        key = (method, alpha)
        if key not in self.models:
            model = small_resnet(num_classes=len(TARGET_CLASSES), name=f"{method}_{alpha}")
            if method != "scratch":
                self.load_source(model)
            tftransfer.penalize(model, "none" if method == "scratch" else method,
                                alpha=alpha, beta=FLAGS.beta, new_layers=[HEAD])
            compile_classifier(model, sgd(FLAGS.learning_rate, FLAGS.finetune_steps))
            self.models[key] = (model, [w.copy() for w in model.get_weights()])
        return self.models[key]

    def load_source(self, model):
        for layer in model.layers:
            if layer.name in self.source_weights:
                layer.set_weights(self.source_weights[layer.name])

    def reset(self, method, model, initial, seed):
        """Back to the starting point; a fresh random head (all layers for scratch)."""
        keras.utils.set_random_seed(seed)
        if method == "scratch":
            model.set_weights(small_resnet(num_classes=len(TARGET_CLASSES)).get_weights())
        else:
            model.set_weights(initial)
            head = model.get_layer(HEAD)
            head.kernel.assign(head.kernel_initializer(head.kernel.shape))
            head.bias.assign(tf.zeros_like(head.bias))
        for variable in model.optimizer.variables:
            variable.assign(tf.zeros_like(variable))

    def run(self, method, alpha, train, evaluate, seed):
        """Trains on ``train`` and returns the accuracy on ``evaluate``."""
        model, initial = self.model_for(method, alpha)
        self.reset(method, model, initial, seed)
        x, y = train
        dataset = (tf.data.Dataset.from_tensor_slices((x, y))
                   .shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
                   .batch(FLAGS.batch_size, drop_remainder=True))
        model.fit(dataset, steps_per_epoch=FLAGS.finetune_steps, epochs=1, verbose=0)
        _, accuracy = model.evaluate(*evaluate, batch_size=500, verbose=0)
        return float(accuracy)


def choose_alphas(runner, splits):
    """alpha per tuned method, chosen by accuracy on the validation split."""
    alphas = [float(a) for a in FLAGS.alpha_grid]
    chosen, grid = {}, []
    for method in (m for m in TUNED if m in FLAGS.methods):
        scores = {}
        for alpha in alphas:
            scores[alpha] = runner.run(method, alpha, splits["fit"], splits["val"], seed=0)
            grid.append({"method": method, "alpha": alpha, "val_accuracy": scores[alpha]})
            log(f"  selection {method:6s} alpha={alpha:<7g} val accuracy {scores[alpha]:.3f}")
        chosen[method] = max(alphas, key=lambda a: (scores[a], -a))  # ties: the weaker penalty
        log(f"chosen alpha for {method}: {chosen[method]:g}")
    return chosen, grid


def results_table(rows, chosen, n_test):
    lines = [f"Target test accuracy, Fashion-MNIST classes 5-9 ({n_test} test images), "
             f"{FLAGS.examples_per_class} labelled images per class, mean +- std over "
             f"{FLAGS.seeds} seeds:", "",
             "| method | alpha | beta | test accuracy (%) |", "|---|---|---|---|"]
    for method in FLAGS.methods:
        accs = 100 * np.array([r["test_accuracy"] for r in rows if r["method"] == method])
        alpha = f"{chosen[method]:g}" if method in chosen else "-"
        beta = "-" if method in ("scratch", "none") else f"{FLAGS.beta:g}"
        lines.append(f"| {method} | {alpha} | {beta} | {accs.mean():.2f} +- {accs.std():.2f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    started = time.time()
    data = fashion_mnist.load(FLAGS.data_dir)
    source = pretrain_source(data, FLAGS.output_dir)
    splits = target_splits(data)
    runner = Runner(source)
    log(f"choosing alpha on {len(splits['val'][1])} validation images "
        f"({len(splits['fit'][1])} for training), grid {FLAGS.alpha_grid}")
    chosen, grid = choose_alphas(runner, splits)
    rows = []
    for method in FLAGS.methods:
        alpha = chosen.get(method, 0.0)
        for seed in range(1, FLAGS.seeds + 1):
            accuracy = runner.run(method, alpha, splits["all"], splits["test"], seed)
            rows.append({"method": method, "alpha": alpha, "seed": seed,
                         "test_accuracy": accuracy})
            log(f"  final {method:7s} seed {seed}: test accuracy {accuracy:.4f}")
    table = results_table(rows, chosen, len(splits["test"][1]))
    print("\n" + table + "\n", flush=True)
    atomic_write_json(os.path.join(FLAGS.output_dir, "results.json"),
                      {"flags": FLAGS.flag_values_dict(), "selection": grid, "runs": rows,
                       "chosen_alpha": chosen, "wall_time_s": time.time() - started})
    atomic_write_text(os.path.join(FLAGS.output_dir, "results.md"), table + "\n")
    log(f"done in {time.time() - started:.0f} s; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
