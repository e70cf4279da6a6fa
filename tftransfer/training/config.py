"""The run configuration of the driver: one dataclass, every field an absl flag.

Each field carries its help text (and, for names, the allowed values) in its metadata;
:mod:`tftransfer.training.flags` turns the fields into flags, so names, defaults and help
live here only. Defaults are the paper's recipe (RECIPE.md): SGD with momentum 0.9, batch
64, 9000 steps, learning rate divided by 10 after 6000 steps, ResNet-101 from ImageNet.
:func:`validate` rejects invalid combinations before any work starts.
"""
import dataclasses
import math
import os
from typing import List, Optional

from tftransfer.models.build import ARCHS, SOURCES
from tftransfer.penalty import FISHER_SCHEMES, SCHEMES

IN_MEMORY_DATASETS = ("synthetic", "fashion_mnist")
PIPELINE_DATASETS = ("caltech256_30", "caltech256_60", "mit_indoor67", "stanford_dogs120",
                     "food101", "imagenet2012", "places365_small", "class_folders")
DATASETS = IN_MEMORY_DATASETS + PIPELINE_DATASETS
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MEANS = ("dataset", "imagenet", "none")


def _field(default, help, choices=None, kind=None):
    metadata = {"help": help, "choices": choices, "kind": kind}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class ConfigError(ValueError):
    """An invalid run configuration; the message lists every problem and its fix."""


@dataclasses.dataclass
class RunConfig:
    """Everything one run needs (see each field's help, or ``--helpfull``)."""

    # Model.
    arch: str = _field("resnet101", "Network architecture.", ARCHS)
    source: str = _field("imagenet", "Source task of the starting point ('none': random "
                         "initialisation, i.e. training from scratch).", SOURCES)
    weights: Optional[str] = _field(None, "Local weights file of the source network with its "
                                    "classifier (default: the keras.applications ImageNet "
                                    "download for keras-layout ResNets).", kind=str)
    source_classes: Optional[int] = _field(None, "Width of the source classifier (default 1000 "
                                           "for imagenet, 365 for places365).", kind=int)
    layout: Optional[str] = _field(None, "ResNet layout: 'keras' (keras.applications) or "
                                   "'torch' (torchvision-converted weights).", kind=str)
    head_init: str = _field("he", "Initialisation of the new classifier.", ("he", "glorot"))
    model_widths: List[int] = _field([], "small_resnet only: channels per stage (default "
                                     "16,32,64).", kind=int)
    # Data.
    dataset: str = _field("stanford_dogs120", "Target dataset ('synthetic': random images, "
                          "for tests; 'fashion_mnist': the demo's IDX files).", DATASETS)
    data_dir: Optional[str] = _field(None, "Data directory (tfds data_dir; for fashion_mnist "
                                     "the directory with the IDX files).", kind=str)
    manual_dir: Optional[str] = _field(None, "Directory with the manually downloaded files "
                                       "(default <data_dir>/manual/<dataset>).", kind=str)
    classes: List[int] = _field([], "fashion_mnist: the classes kept, relabelled 0..n-1 in "
                                "this order (default all 10).", kind=int)
    synthetic_classes: int = _field(4, "synthetic: number of classes.")
    examples_per_class: int = _field(0, "Keep this many training images per class (drawn "
                                     "with --split_seed; 0 = all; synthetic: 0 means 16).")
    validation_fraction: float = _field(0.0, "Share of the kept training images of each class "
                                        "held out as a validation split; when > 0 the model "
                                        "trains on the rest and is evaluated on the "
                                        "validation split instead of the test set (model "
                                        "selection). In-memory datasets only.")
    split_seed: int = _field(0, "Seed of the per-class subsample and validation split.")
    test_examples_per_class: int = _field(0, "Evaluate on the first N test images of each "
                                          "class in stored order (0 = all; for smoke runs). "
                                          "In-memory datasets only.")
    resize: int = _field(256, "Stored image size: the side of the square resize, or the "
                         "shorter side with --keep_aspect (fashion_mnist: the 28x28 images "
                         "are upscaled, bilinear, to this side).")
    grey_to_rgb: bool = _field(False, "fashion_mnist: repeat the grey channel three times "
                               "(for networks pretrained on RGB images).")
    pad: int = _field(0, "In-memory datasets: zero-pad each training image by this many "
                      "pixels per side before the random crop back to --crop_size, then "
                      "mirror w.p. 1/2 (CIFAR-style augmentation; grey images are only "
                      "augmented when --pad > 0).")
    keep_aspect: bool = _field(False, "Resize keeping the aspect ratio, shorter side "
                               "--resize (the paper's starred variant).")
    crop_size: int = _field(224, "Training and test crop size (the network's input size).")
    eval_crops: int = _field(1, "Test crops per image: 1 (central crop) or 10 (corners, "
                             "centre and their mirrors, probabilities averaged).", (1, 10))
    mean: str = _field("dataset", "Mean subtracted before the network's preprocessing: the "
                       "target training set's per-channel mean, ImageNet's, or 'none' (the "
                       "preprocessing mode's own).", MEANS)
    color_jitter: bool = _field(True, "Random brightness/saturation/contrast in training.")
    dogs_test_set: str = _field("imagenet_val", "stanford_dogs120 test set: the ImageNet "
                                "validation dogs (paper) or the official list (8580, the "
                                "authors' code).", ("imagenet_val", "official"))
    imagenet_val_dir: Optional[str] = _field(None, "stanford_dogs120: directory of the "
                                             "ILSVRC-2012 validation images.", kind=str)
    # Penalty.
    scheme: str = _field("l2_sp", "Regularisation scheme.", SCHEMES)
    alpha: float = _field(0.1, "Strength on the inherited weights (RECIPE.md: 0.1 for l2_sp, "
                          "1e-4 for l2 in the authors' script).")
    beta: float = _field(0.01, "Strength of L2 on the new classifier.")
    epsilon: float = _field(1e-16, "Smoothing constant of l1_sp and the group-lasso schemes.")
    penalize_all_trainable: bool = _field(False, "Also penalise biases and batch-norm "
                                          "parameters (TLlib's rule).")
    fisher_file: Optional[str] = _field(None, "Fisher diagonal (.npz of tftransfer.fisher."
                                        "save, tools/compute_fisher.py), for the Fisher "
                                        "schemes.", kind=str)
    # Optimisation.
    learning_rate: float = _field(0.01, "Initial learning rate (paper: 0.005, 0.01 or 0.02 "
                                  "per task).")
    lr_boundaries: List[int] = _field([6000], "Steps after which the learning rate is "
                                      "multiplied by --lr_decay_factor (paper: 6000; the "
                                      "authors' script: 5000).", kind=int)
    lr_decay_factor: float = _field(0.1, "Factor applied at each boundary.")
    momentum: float = _field(0.9, "SGD momentum.")
    batch_size: int = _field(64, "Global batch size, whatever the number of replicas.")
    train_steps: int = _field(9000, "Training iterations.")
    seed: int = _field(0, "Seed of the new layer's initialisation, shuffling and "
                       "augmentation: runs differing only in it are the paper's repeats.")
    deterministic: bool = _field(False, "Enable TensorFlow op determinism (bitwise "
                                 "reproducible runs, slower on GPU).")
    freeze_units: int = _field(0, "Freeze the first k units (stem, then residual blocks: "
                               "the paper's Figure 3).")
    freeze_batch_norm: bool = _field(False, "Run every batch-norm layer in inference mode "
                                     "(statistics and affine parameters frozen).")
    lr_multipliers: List[str] = _field([], "Per-group learning-rate multipliers, entries "
                                       "'UNIT_OR_LAYER=MULTIPLIER' or 'first:K=MULTIPLIER' "
                                       "(the first K units), e.g. first:4=0.01,predictions=1.",
                                       kind=str)
    # Evaluation.
    source_eval_dataset: Optional[str] = _field(None, "Evaluate the source task (Table 5) on "
                                                "this dataset's test/validation split with "
                                                "the source classifier put back, before and "
                                                "after fine-tuning.", DATASETS)
    source_eval_data_dir: Optional[str] = _field(None, "data_dir of --source_eval_dataset "
                                                 "(default --data_dir).", kind=str)
    source_eval_classes: List[int] = _field([], "fashion_mnist: the source task's classes, "
                                            "relabelled 0..n-1 in this order (default all "
                                            "10).", kind=int)
    source_eval_examples: int = _field(0, "Evaluate the source task on at most this many "
                                       "images (0 = all).")
    eval_batch_size: int = _field(64, "Batch size of the evaluations.")
    # Run.
    output_dir: Optional[str] = _field(None, "Where checkpoints, logs, the exported model "
                                       "and results.json go (default: runs/<dataset>-"
                                       "<scheme>-<hash of the flags that change the "
                                       "result>, one directory per run).", kind=str)
    strategy: str = _field("default", "Distribution strategy.", STRATEGIES)
    tpu: Optional[str] = _field(None, "TPU name or address for --strategy=tpu.", kind=str)
    cpu_logical_devices: int = _field(0, "Split the CPU into this many logical devices "
                                      "(mirrored training without accelerators, for tests).")
    precision: str = _field("float32", "Keras dtype policy; mixed_float16 adds loss "
                            "scaling (LossScaleOptimizer).", PRECISIONS)
    xla: bool = _field(False, "Compile the train step with XLA (jit_compile).")
    checkpoint_every: int = _field(500, "Checkpoint every N steps (0: only at the end).")
    log_every: int = _field(100, "Log line, train_log.csv row and TensorBoard scalars every N "
                            "steps (0: none, which lets Keras dispatch steps asynchronously).")
    deviation_layers: List[str] = _field([], "Kernels whose deviation ||W - W0||_F/sqrt(n) is "
                                         "logged (variable paths; default: first, middle and "
                                         "last inherited kernel).", kind=str)
    export: bool = _field(True, "Export the inference model as a SavedModel and check it.")
    save_weights: bool = _field(False, "Also save the trained weights as model.weights.h5 "
                                "(usable as --weights of a later run with --source=custom).")
    verbose: int = _field(1, "0: quiet; 1: log lines; 2: also the Keras progress bar.",
                          (0, 1, 2))


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
FLOAT_FIELDS = tuple(name for name, f in FIELDS.items() if f.type is float)
FASHION_MNIST_CLASSES = 10


def _not_finite(c):
    """Names of the float fields of ``c`` that are NaN or infinite (NaN passes every range
    check, ``nan < 0`` being False, so finiteness is checked first)."""
    return [name for name in FLOAT_FIELDS if not math.isfinite(getattr(c, name))]


def _class_list_problems(name, classes, dataset):
    """Problems of ``--classes`` or ``--source_eval_classes`` (``classes``) for ``dataset``."""
    if not classes:
        return []
    out = []
    repeated = sorted({k for k in classes if classes.count(k) > 1})
    if repeated:
        out.append(f"--{name}={classes} repeats {repeated}; list each class once.")
    if dataset == "fashion_mnist" and any(not 0 <= k < FASHION_MNIST_CLASSES for k in classes):
        out.append(f"--{name}={classes} is out of range: Fashion-MNIST's classes are 0 to "
                   f"{FASHION_MNIST_CLASSES - 1}.")
    if len(set(classes)) < 2:
        out.append(f"--{name}={classes} keeps a single class, a task scored 1.0 by any "
                   "model; give at least two (or none for all).")
    return out


def _problems(c):
    """Every problem of ``c`` as a message that says how to fix it."""
    out = []
    for name, f in FIELDS.items():
        choices, value = f.metadata["choices"], getattr(c, name)
        if choices and value is not None and value not in choices:
            out.append(f"--{name}={value!r} is unknown; choose one of {list(choices)}.")
    not_finite = _not_finite(c)
    out.extend(f"--{name}={getattr(c, name)} is not a finite number; give a finite value."
               for name in not_finite)
    for name in ("alpha", "beta", "epsilon", "validation_fraction", "freeze_units",
                 "checkpoint_every", "log_every", "pad", "source_eval_examples",
                 "examples_per_class", "test_examples_per_class"):
        if name not in not_finite and getattr(c, name) < 0:
            out.append(f"--{name}={getattr(c, name)} is negative; it must be >= 0.")
    for name in ("learning_rate", "lr_decay_factor"):
        if name not in not_finite and not getattr(c, name) > 0:
            out.append(f"--{name}={getattr(c, name)} must be > 0.")
    if "momentum" not in not_finite and not 0 <= c.momentum < 1:
        out.append(f"--momentum={c.momentum} must be in [0, 1) (the recipe: 0.9).")
    for name in ("batch_size", "train_steps", "crop_size", "resize", "eval_batch_size",
                 "synthetic_classes"):
        if getattr(c, name) < 1:
            out.append(f"--{name}={getattr(c, name)} must be a positive integer.")
    if c.scheme in FISHER_SCHEMES and not c.fisher_file:
        out.append(f"--scheme={c.scheme} needs --fisher_file (a Fisher diagonal .npz from "
                   "tools/compute_fisher.py).")
    if c.fisher_file and c.scheme not in FISHER_SCHEMES:
        out.append(f"--fisher_file is only used by {list(FISHER_SCHEMES)}, not "
                   f"--scheme={c.scheme}; drop it or change the scheme.")
    hints = {"fisher_file": "compute it with tools/compute_fisher.py",
             "weights": "convert or save the source network's weights (docs/weights.md)"}
    for name, hint in hints.items():
        path = getattr(c, name)
        if path and not os.path.isfile(os.path.expanduser(path)):
            out.append(f"--{name}={path} does not exist; {hint}.")
    if c.source == "custom" and not (c.weights and c.source_classes):
        out.append("--source=custom needs --weights (your source network's weights file) and "
                   "--source_classes (the width of its classifier).")
    if c.source == "none" and c.weights:
        out.append("--source=none trains from scratch but --weights was given; set --source.")
    if c.source == "none" and c.scheme not in ("none", "l2"):
        out.append(f"--scheme={c.scheme} pulls toward a starting point, but --source=none has "
                   "none; use --scheme=l2 or none, or a pretrained source.")
    if c.source_eval_dataset and c.source == "none":
        out.append("--source_eval_dataset needs a pretrained source (it puts the source "
                   "classifier back); --source=none has none.")
    if c.crop_size > c.resize:
        out.append(f"--crop_size={c.crop_size} exceeds --resize={c.resize}.")
    if c.eval_crops == 10 and c.resize <= c.crop_size:
        out.append(f"--eval_crops=10 needs images larger than the crop: --resize={c.resize} "
                   f"<= --crop_size={c.crop_size} makes the corner crops equal the centre "
                   "one; raise --resize or use --eval_crops=1.")
    if c.dataset == "fashion_mnist" and c.resize != c.crop_size:
        out.append("--dataset=fashion_mnist is stored at --resize (28: as is; larger: "
                   "upscaled) and cropped at the same size: set --crop_size=--resize (use "
                   "--pad for random crops).")
    if c.grey_to_rgb and c.dataset != "fashion_mnist":
        out.append("--grey_to_rgb applies to --dataset=fashion_mnist only.")
    if c.pad and c.dataset not in IN_MEMORY_DATASETS:
        out.append(f"--pad applies to the in-memory datasets {list(IN_MEMORY_DATASETS)}; the "
                   "others crop from larger stored images (--resize > --crop_size).")
    out.extend(_class_list_problems("classes", c.classes, c.dataset))
    out.extend(_class_list_problems("source_eval_classes", c.source_eval_classes,
                                    c.source_eval_dataset))
    if c.dataset == "fashion_mnist" and c.eval_crops != 1:
        out.append("--dataset=fashion_mnist supports --eval_crops=1 only.")
    if c.validation_fraction and c.dataset not in IN_MEMORY_DATASETS:
        out.append(f"--validation_fraction is supported for {list(IN_MEMORY_DATASETS)}; "
                   "for other datasets carve the validation split with the data tools.")
    if c.test_examples_per_class and c.dataset not in IN_MEMORY_DATASETS:
        out.append(f"--test_examples_per_class is supported for {list(IN_MEMORY_DATASETS)}; "
                   "drop it to evaluate on the whole test set.")
    if "validation_fraction" not in not_finite and not c.validation_fraction < 1:
        out.append(f"--validation_fraction={c.validation_fraction} must be < 1.")
    bounds = list(c.lr_boundaries)
    if bounds != sorted(set(bounds)) or any(b <= 0 or b >= c.train_steps for b in bounds):
        out.append(f"--lr_boundaries={bounds} must be increasing steps strictly between 0 and "
                   f"--train_steps={c.train_steps}.")
    for entry in c.lr_multipliers:
        try:
            parse_multiplier(entry)
        except ValueError as error:
            out.append(str(error))
    if c.strategy == "tpu" and not c.tpu:
        out.append("--strategy=tpu needs --tpu (the TPU name or grpc:// address; 'local' for a "
                   "TPU VM).")
    if c.strategy == "multi_worker" and "TF_CONFIG" not in os.environ:
        out.append("--strategy=multi_worker reads the cluster from the TF_CONFIG environment "
                   "variable, which is not set.")
    if c.model_widths and c.arch != "small_resnet":
        out.append("--model_widths applies to --arch=small_resnet only.")
    return out


def parse_multiplier(entry):
    """``'NAME=M'`` or ``'first:K=M'`` -> ``(name_or_K, M)``; ValueError with the fix."""
    name, sep, value = entry.rpartition("=")
    try:
        multiplier = float(value)
    except ValueError:
        multiplier = None
    if not sep or not name or multiplier is None or not 0 <= multiplier < math.inf:
        raise ValueError(f"--lr_multipliers entry {entry!r} must be 'UNIT_OR_LAYER=M' or "
                         "'first:K=M' with M finite and >= 0, e.g. first:4=0.01.")
    if name.startswith("first:"):
        count = name[len("first:"):]
        if not count.isdigit():
            raise ValueError(f"--lr_multipliers entry {entry!r}: 'first:K' needs an integer K.")
        return int(count), multiplier
    return name, multiplier


def validate(config):
    """Returns ``config`` if it is valid; raises :class:`ConfigError` listing every problem."""
    problems = _problems(config)
    if problems:
        raise ConfigError("Invalid flags, nothing was run:\n  - " + "\n  - ".join(problems))
    return config


def to_dict(config):
    """The configuration as a JSON-ready dict (the ``flags`` of results.json)."""
    return dataclasses.asdict(config)
