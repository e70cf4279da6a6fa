"""The paper's question at CPU scale: does L2-SP beat L2 when fine-tuning on little data?

Source task: Fashion-MNIST classes 0-4 (tops and trousers); a small ResNet is pretrained on
them and cached. Target task: classes 5-9 (footwear and bags) with a few labelled images per
class. Methods: plain fine-tuning (``none``), ``l2`` (weight decay toward 0) and ``l2_sp``
(toward the pretrained weights), each with L2(beta) on the new head, and training from
scratch. The strength alpha of ``l2`` and ``l2_sp`` is chosen on a validation split carved
from the target training images (never on the test set); the chosen setting is then trained
on all labelled images with several seeds and evaluated on the 5000 test images of
classes 5-9.

Every run is a run of the driver (:func:`tftransfer.training.run.run`, the package's only
training loop) configured by the flagfiles ``flags/demo_*.cfg``, which also run on their
own with ``python -m tftransfer.train`` (docs/driver.md); this module only sets the
demo's sizes, picks alpha and prints the table. Each run keeps its directory under
``--output_dir``: a finished run is not retrained, so a second demo reuses the source model
and every finished run. Each run also appends its row to ``<output_dir>/summary.csv``
(:mod:`tftransfer.training.summary`; ``tftransfer tables <output_dir>``
tabulates them).

Every run is seeded, so the table is a function of the flags, the TensorFlow build, the
CPU's vector instructions (oneDNN picks its kernels by them: AVX-512 and AVX2 round
differently) and the number of TensorFlow threads (they split each op's sums). ``--threads``
fixes the last, so machines with other core counts print the same table.

    python -m experiments.demo [--data_dir DIR] [--output_dir DIR] [--examples_per_class 20]
"""
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import flags, logging

from tftransfer.io_utils import atomic_write_json, atomic_write_text
from tftransfer.training import config as config_lib
from tftransfer.training import data_location
from tftransfer.training import flags as driver_flags
from tftransfer.training.model import ModelCache
from tftransfer.training.run import run

from tftransfer.training import help as help_lib
from tftransfer.training import progress
from tftransfer.training.selection import choose

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Directory with the Fashion-MNIST IDX files "
                    "(default: Keras cache, then /usr/share/datasets/fashion-mnist).")
flags.DEFINE_string("output_dir", os.path.join("runs", "demo"),
                    "Where the cached source model, every run and the results go.")
flags.DEFINE_integer("examples_per_class", 20, "Labelled target training images per class.")
flags.DEFINE_integer("seeds", 3, "Seeds of the final runs (mean +- std over them).")
flags.DEFINE_list("alpha_grid", ["1e-4", "1e-3", "1e-2", "0.1"],
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
flags.DEFINE_integer("threads", 2, "TensorFlow's intra- and inter-op threads, whatever the "
                     "core count: the table depends on them (README's: 2; 0 = TensorFlow's "
                     "default, one per core; set before TensorFlow starts).")

SOURCE_CLASSES, TARGET_CLASSES = tuple(range(5)), tuple(range(5, 10))
TUNED = ("l2", "l2_sp")
PRETRAIN_BATCH = 128
CACHE = ModelCache()  # one compiled model per (method, alpha), reset between runs
FLAGFILES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags")


def driver_config(*names, **overrides):
    """The driver's RunConfig read from ``flags/<name>.cfg`` files, then ``overrides``."""
    values = flags.FlagValues()
    driver_flags.define_flags(values)
    paths = [os.path.join(FLAGFILES, f"{name}.cfg") for name in names]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"Demo flagfile(s) {missing} not found: run the demo from a "
                                "checkout of tftransfer (they live in its flags/ directory).")
    values(["demo"] + [f"--flagfile={p}" for p in paths])
    config = driver_flags.config_from_flags(values, validate=False)
    if "summary_csv" not in overrides:  # every run's row in one table
        overrides["summary_csv"] = os.path.join(FLAGS.output_dir, "summary.csv")
    return config_lib.replace(config, verbose=0, **overrides)


def count_source_images():
    from tftransfer.data import fashion_mnist

    _, labels = fashion_mnist.load(FLAGS.data_dir)["train"]
    return int(np.isin(labels, SOURCE_CLASSES).sum())


def pretrain_source():
    """Path of the source weights: the driver's run of flags/demo_source.cfg, sized by
    --pretrain_epochs (a finished run is reused)."""
    n = count_source_images()
    steps = FLAGS.pretrain_epochs * -(-n // PRETRAIN_BATCH)
    output_dir = os.path.join(FLAGS.output_dir, f"source-e{FLAGS.pretrain_epochs}")
    weights = os.path.join(output_dir, "model.weights.h5")
    config = driver_config("demo_source", data_dir=FLAGS.data_dir, output_dir=output_dir,
                           train_steps=steps, lr_boundaries=[b for b in [steps * 2 // 3]
                                                             if 0 < b < steps])
    config = config_lib.replace(config, verbose=1)  # progress lines of the long run
    if os.path.exists(os.path.join(output_dir, "results.json")):
        logging.info(f"source model: loading cached weights {weights}")
    else:
        logging.info(f"source model: pretraining on {n} images of classes 0-4, "
            f"{FLAGS.pretrain_epochs} epochs ({steps} steps)")
    record = run(config)
    logging.info(f"source model: test accuracy on classes 0-4 = {record['accuracy']:.4f}")
    return weights


def target_config(method, alpha, seed, weights, select):
    """The driver's configuration of one target run."""
    steps = FLAGS.finetune_steps
    phase = "select" if select else "final"
    names = ["demo_target", f"demo_{method}"] + (["demo_select"] if select else [])
    overrides = dict(data_dir=FLAGS.data_dir, examples_per_class=FLAGS.examples_per_class,
                     train_steps=steps,
                     lr_boundaries=[b for b in [int(steps * 2 / 3)] if 0 < b < steps],
                     batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
                     beta=FLAGS.beta, alpha=alpha, seed=seed,
                     output_dir=os.path.join(FLAGS.output_dir, phase,
                                             f"{method}_alpha{alpha:g}", f"seed{seed}"))
    if select:
        overrides["validation_fraction"] = FLAGS.val_fraction
    if method != "scratch":
        overrides["weights"] = weights
    return driver_config(*names, **overrides)


def choose_alphas(weights):
    """alpha per tuned method, chosen by accuracy on the validation split."""
    alphas = [float(a) for a in FLAGS.alpha_grid]
    chosen, grid = {}, []
    for method in (m for m in TUNED if m in FLAGS.methods):
        records = []
        for alpha in alphas:
            record = run(target_config(method, alpha, 0, weights, True), cache=CACHE)
            records.append(record)
            grid.append({"method": method, "alpha": alpha, "val_accuracy": record["accuracy"]})
            logging.info(f"  selection {method:6s} alpha={alpha:<7g} val accuracy "
                         f"{record['accuracy']:.3f}")
        chosen[method] = choose(records, "alpha")  # ties: the weaker penalty
        logging.info(f"chosen alpha for {method}: {chosen[method]:g}")
    return chosen, grid


def results_table(rows, chosen, n_test):
    lines = [f"Target test accuracy, Fashion-MNIST classes 5-9 ({n_test} test images), "
             f"{FLAGS.examples_per_class} labelled images per class, mean +- sample std "
             f"(ddof=1) over {FLAGS.seeds} seeds:", "",
             "| method | alpha | beta | test accuracy (%) |", "|---|---|---|---|"]
    for method in FLAGS.methods:
        accs = 100 * np.array([r["test_accuracy"] for r in rows if r["method"] == method])
        alpha = f"{chosen[method]:g}" if method in chosen else "-"
        beta = "-" if method in ("scratch", "none") else f"{FLAGS.beta:g}"
        spread = f"{accs.std(ddof=1):.2f}" if len(accs) > 1 else "n/a (one seed)"
        lines.append(f"| {method} | {alpha} | {beta} | {accs.mean():.2f} +- {spread} |")
    return "\n".join(lines)


def main(argv):
    del argv
    progress.show_progress()
    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    try:  # before any work, as the driver: a --data_dir without the data is refused
        data_path = data_location.check_data_dir(FLAGS.data_dir)
    except config_lib.ConfigError as error:
        logging.error("%s", error)
        sys.exit(2)
    started = time.time()
    weights = pretrain_source()
    n_val = int(round(FLAGS.examples_per_class * FLAGS.val_fraction))
    logging.info(f"choosing alpha on {n_val * len(TARGET_CLASSES)} validation images "
        f"({(FLAGS.examples_per_class - n_val) * len(TARGET_CLASSES)} for training), "
        f"grid {FLAGS.alpha_grid}")
    chosen, grid = choose_alphas(weights)
    rows, n_test = [], 0
    for method in FLAGS.methods:
        alpha = chosen.get(method, 0.0)
        for seed in range(1, FLAGS.seeds + 1):
            record = run(target_config(method, alpha, seed, weights, False), cache=CACHE)
            n_test = record["num_eval"]
            rows.append({"method": method, "alpha": alpha, "seed": seed,
                         "test_accuracy": record["accuracy"]})
            logging.info(f"  final {method:7s} seed {seed}: test accuracy {record['accuracy']:.4f}")
    table = results_table(rows, chosen, n_test)
    print("\n" + table + "\n", flush=True)
    atomic_write_json(os.path.join(FLAGS.output_dir, "results.json"),
                      {"flags": FLAGS.flag_values_dict(), "data_path": data_path,
                       "selection": grid, "runs": rows,
                       "chosen_alpha": chosen, "wall_time_s": time.time() - started})
    atomic_write_text(os.path.join(FLAGS.output_dir, "results.md"), table + "\n")
    logging.info(f"done in {time.time() - started:.0f} s; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    help_lib.run(main)  # --help: this program's flags, exit 0
