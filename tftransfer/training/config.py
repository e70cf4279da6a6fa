"""The run configuration of the driver: nested sections declared once, every leaf an absl
flag with its effect on the run.

:class:`RunConfig` holds eight sections (``model``, ``data``, ``penalty``, ``optim``,
``evaluation``, ``runtime``, ``task``, ``method``); ``data`` holds one options section per dataset that
has options of its own (``data.synthetic``, ``data.fashion_mnist``, ``data.stanford_dogs120``,
``data.scenes``). ``task`` chooses classification (the default) or semantic segmentation
(Li et al. 2018, Section 4.2) and holds the options of segmentation; options added after
run identities were first stored are declared with ``since`` and leave the identity digest
of a run that keeps them at their default unchanged. ``method`` chooses a fine-tuning method
of :mod:`tftransfer.methods` (``--method``, default ``none``: the ``--scheme`` penalty alone)
and holds its hyper-parameters, each refused for another method (``since`` too).
Every leaf field is declared once with :func:`option`: its flag name (flat, e.g.
``--arch``, ``--alpha``, ``--dogs_test_set``), help text, allowed values, range and its
*effect*:

- :data:`MODEL`: changes the compiled model (architecture, source weights, penalty,
  optimizer, freezing, strategy, precision); part of the
  :class:`~tftransfer.training.model.ModelCache` key and of the run identity;
- :data:`RESULT`: changes what the run computes but not the compiled model (data, seed,
  steps, evaluation); part of the run identity (:mod:`tftransfer.training.identity`);
- :data:`OUTPUT`: changes only what is logged or saved, and where.

"Is this the same run" and "can this compiled model be reused" are derived from these tags
(:func:`names_with`), :mod:`tftransfer.training.flags` derives the flags from the same
declaration. :func:`make` and :func:`replace` build and change a configuration by flag
name. Defaults are the recipe of Li et al. 2018, Section 4.1: SGD with momentum 0.9, batch
64, 9000 steps, learning rate divided by 10 after 6000 steps, ResNet-101 from ImageNet,
alpha 0.1 and beta 0.01 for L2-SP. :func:`validate` rejects invalid combinations before
any work starts; each section and each dataset's options check themselves.
"""
import copy
import dataclasses
import math
import os
from typing import List, Optional

import keras

from tftransfer import methods as methods_lib
from tftransfer.methods import wise_ft as wise_ft_lib
from tftransfer.models.build import ARCHS, SOURCES
from tftransfer.penalty import FISHER_SCHEMES, PATHS, SCHEMES

MODEL, RESULT, OUTPUT = "model", "result", "output"
EFFECTS = (MODEL, RESULT, OUTPUT)
# Ranges of numeric options (the message each one gives when violated).
NON_NEGATIVE, POSITIVE, POSITIVE_INT = "non_negative", "positive", "positive_int"

PIPELINE_DATASETS = ("caltech256_30", "caltech256_60", "mit_indoor67", "stanford_dogs120",
                     "food101", "imagenet2012", "places365_small", "class_folders")
# Segmentation (--task=segmentation): the builders of tftransfer.data.segmentation_pipeline
# and the in-memory Fashion-MNIST scenes (tftransfer.data.scenes).
SEGMENTATION_PIPELINE_DATASETS = ("cityscapes", "sbd", "segmentation_folders")
SEGMENTATION_DATASETS = ("scenes",) + SEGMENTATION_PIPELINE_DATASETS
IN_MEMORY_DATASETS = ("synthetic", "fashion_mnist", "scenes")
DATASETS = IN_MEMORY_DATASETS + PIPELINE_DATASETS + SEGMENTATION_PIPELINE_DATASETS
TASKS = ("classification", "segmentation")
SEG_HEADS = ("fcn", "resnet", "deeplab", "pspnet")  # tftransfer.models.segmentation.HEADS
BATCH_NORM_MODES = ("frozen", "frozen_stats", "train")  # ... .segmentation.BATCH_NORM_MODES
SEG_ARCHS = ("resnet50", "resnet101", "resnet152", "small_resnet")
SEG_EVALS = ("whole", "sliding", "multi_scale")
LR_SCHEDULES = ("piecewise", "poly")
SCENE_SOURCES = ("fashion_mnist", "synthetic")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MEANS = ("dataset", "imagenet", "none")
FASHION_MNIST_CLASSES = 10
# Datasets whose images or own splits are drawn with --split_seed.
SEEDED_DATASETS = ("synthetic", "caltech256_30", "caltech256_60", "scenes")
# The tag of the options added after run identities were first stored (see option()).
SEGMENTATION_RELEASE = "segmentation"
# The tag of the options of --method (issue 19), added after the segmentation task's.
METHODS_RELEASE = "methods"
# The tag of --penalty_path (issue 20), added after the methods' options.
SPEED_RELEASE = "speed"
# --method: "none" (the --scheme penalty alone, the driver before methods existed) or a
# method of tftransfer.methods.registry.
NO_METHOD = "none"
# Where the recipe's learning-rate decay falls (--lr_boundaries over --train_steps), in words.
RECIPE_DECAY_AT = "2/3 of training"
METHODS = (NO_METHOD,) + tuple(methods_lib.names())


class ConfigError(ValueError):
    """An invalid run configuration; the message lists every problem and its fix."""


def option(default, help, effect, choices=None, kind=None, bound=None, flag=None,
           since=None):
    """A leaf field: ``default``, ``help``, its ``effect`` (:data:`EFFECTS`), allowed
    ``choices``, element or value ``kind`` (lists and optional values), a range ``bound``
    and the ``flag`` name (default: the field's name). ``since``: the option was added
    after run identities were first stored (e.g. :data:`SEGMENTATION_RELEASE`); at its
    default it is left out of the identity digest and read as its default from an identity
    stored without it (:mod:`tftransfer.training.identity`), so every earlier run keeps
    its digest and directory."""
    if effect not in EFFECTS:
        raise ValueError(f"effect {effect!r} is not one of {EFFECTS}")
    metadata = {"help": help, "choices": choices, "kind": kind, "effect": effect,
                "bound": bound, "flag": flag, "since": since}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls):
    """A field holding the section dataclass ``cls`` (with its defaults)."""
    return dataclasses.field(default_factory=cls, metadata={"section": True})


def integer_classes(classes):
    """``classes`` (ints or integer strings, as ``--classes`` gives them) as ints; None when
    one is not an integer."""
    try:
        return [int(k) for k in classes]
    except (TypeError, ValueError):
        return None


def _class_list_problems(flag, classes, count, name):
    """Problems of ``--flag=classes`` for a dataset ``name`` of ``count`` integer classes."""
    if not classes:
        return []
    classes = integer_classes(classes)
    if classes is None:
        return [f"--{flag} of {name} are integer labels 0 to {count - 1}, not names."]
    out = []
    repeated = sorted({k for k in classes if classes.count(k) > 1})
    if repeated:
        out.append(f"--{flag}={classes} repeats {repeated}; list each class once.")
    if any(not 0 <= k < count for k in classes):
        out.append(f"--{flag}={classes} is out of range: {name}'s classes are 0 to "
                   f"{count - 1}.")
    if len(set(classes)) < 2:
        out.append(f"--{flag}={classes} keeps a single class, a task scored 1.0 by any "
                   "model; give at least two (or none for all).")
    return out


class DatasetOptions:
    """The options of one dataset; ``in_memory``: its images are arrays in memory (built
    by :mod:`tftransfer.training.data`, not prepared by tfds: ``--manual_dir`` and
    ``--keep_aspect`` do not apply)."""
    in_memory = False

    def problems(self, config):
        """Problems of these options within ``config`` (the dataset is selected)."""
        return []


@dataclasses.dataclass
class SyntheticOptions(DatasetOptions):
    """``synthetic``: random images whose class sets a colour and a stripe pattern (tests)."""
    in_memory = True
    classes: int = option(4, "synthetic: number of classes.", RESULT, bound=POSITIVE_INT,
                          flag="synthetic_classes")

    def problems(self, config):
        out = _class_list_problems("classes", config.data.classes, self.classes,
                                   "--dataset=synthetic")
        if config.data.data_dir:
            out.append("--data_dir does not apply to --dataset=synthetic (its images are "
                       "generated in memory); drop it.")
        return out


@dataclasses.dataclass
class FashionMnistOptions(DatasetOptions):
    """``fashion_mnist``: the IDX files of Fashion-MNIST (grey 28x28), the demo's data."""
    in_memory = True
    grey_to_rgb: bool = option(False, "fashion_mnist: repeat the grey channel three times "
                               "(for a source network pretrained on RGB images).", RESULT,
                               flag="grey_to_rgb")

    def problems(self, config):
        out = _class_list_problems("classes", config.data.classes, FASHION_MNIST_CLASSES,
                                   "Fashion-MNIST")
        if config.data.resize != config.data.crop_size:
            out.append("--dataset=fashion_mnist is stored at --resize (28: as is; larger: "
                       "upscaled) and cropped at the same size: set --crop_size=--resize.")
        if config.evaluation.eval_crops != 1:
            out.append("--dataset=fashion_mnist supports --eval_crops=1 only.")
        return out


@dataclasses.dataclass
class StanfordDogsOptions(DatasetOptions):
    """``stanford_dogs120``: its test set."""
    test_set: str = option("imagenet_val", "stanford_dogs120 test set: the ImageNet "
                           "validation dogs (Li et al. 2018, Section 4.1) or the official "
                           "list (8580, the authors' code).", RESULT,
                           ("imagenet_val", "official"), flag="dogs_test_set")
    imagenet_val_dir: Optional[str] = option(None, "stanford_dogs120: directory of the "
                                             "ILSVRC-2012 validation images.", RESULT,
                                             kind=str)


@dataclasses.dataclass
class ScenesOptions(DatasetOptions):
    """``scenes`` (``--task=segmentation``): scenes of Fashion-MNIST items
    (:func:`tftransfer.data.scenes.make_scenes`), mask 0 = background and ``1 + c`` = item
    class ``c`` of ``--classes`` (default all ten); or of ``synthetic`` items (tests, no
    files). The items of the training scenes are the training images (less those held out
    by ``--validation_fraction`` / ``--cv_folds``, which compose the validation scenes),
    those of the test scenes the test images; each set is drawn with ``--split_seed``."""
    in_memory = True
    source: str = option("fashion_mnist", "scenes: where the items come from: the "
                         "Fashion-MNIST IDX files (--data_dir) or synthetic 28x28 items of "
                         "10 classes (tests; no files).", RESULT, SCENE_SOURCES,
                         flag="scenes_source", since=SEGMENTATION_RELEASE)
    train: int = option(512, "scenes: number of training scenes.", RESULT,
                        bound=POSITIVE_INT, flag="scenes_train", since=SEGMENTATION_RELEASE)
    test: int = option(256, "scenes: number of test (or validation) scenes.", RESULT,
                       bound=POSITIVE_INT, flag="scenes_test", since=SEGMENTATION_RELEASE)
    size: int = option(64, "scenes: side of the square canvas in pixels.", RESULT,
                       bound=POSITIVE_INT, flag="scenes_size", since=SEGMENTATION_RELEASE)
    items: List[int] = option([2, 4], "scenes: min,max number of items per scene.", RESULT,
                              kind=int, flag="scenes_items", since=SEGMENTATION_RELEASE)
    scale: List[float] = option([0.75, 1.5], "scenes: min,max scale factor of a 28x28 item.",
                                RESULT, kind=float, flag="scenes_scale",
                                since=SEGMENTATION_RELEASE)
    rgb: bool = option(False, "scenes: repeat the grey channel three times (for a source "
                       "network pretrained on RGB images).", RESULT, flag="scenes_rgb",
                       since=SEGMENTATION_RELEASE)

    def problems(self, config):
        out = _class_list_problems("classes", config.data.classes, FASHION_MNIST_CLASSES,
                                   "--dataset=scenes")
        if self.source == "synthetic" and config.data.data_dir:
            out.append("--data_dir does not apply to --scenes_source=synthetic (its items "
                       "are generated in memory); drop it.")
        if len(self.items) != 2 or not 1 <= self.items[0] <= self.items[-1]:
            out.append(f"--scenes_items={self.items} must be min,max with 1 <= min <= max.")
        if (len(self.scale) != 2 or not all(math.isfinite(v) for v in self.scale)
                or not 0 < self.scale[0] <= self.scale[-1]):
            out.append(f"--scenes_scale={self.scale} must be min,max with 0 < min <= max.")
        elif round(28 * self.scale[1]) > self.size:
            out.append(f"--scenes_scale max {self.scale[1]} makes a 28-px item "
                       f"{round(28 * self.scale[1])} px, larger than --scenes_size="
                       f"{self.size}; lower the scale or raise the size.")
        if config.data.crop_size > self.size:
            out.append(f"--crop_size={config.data.crop_size} exceeds --scenes_size="
                       f"{self.size}: set --crop_size to at most the scene size (the "
                       "training crop).")
        return out


NO_OPTIONS = DatasetOptions()


@dataclasses.dataclass
class ModelConfig:
    """The network: architecture, starting point, new head and what stays frozen."""
    arch: str = option("resnet101", "Network architecture.", MODEL, ARCHS)
    source: str = option("imagenet", "Source task of the starting point ('none': random "
                         "initialisation, i.e. training from scratch).", MODEL, SOURCES)
    weights: Optional[str] = option(None, "Local weights file of the source network with its "
                                    "classifier (default: the keras.applications ImageNet "
                                    "download for keras-layout ResNets).", MODEL, kind=str)
    source_classes: Optional[int] = option(None, "Width of the source classifier (default "
                                           "1000 for imagenet, 365 for places365).", MODEL,
                                           kind=int)
    layout: Optional[str] = option(None, "ResNet layout: 'keras' (keras.applications) or "
                                   "'torch' (torchvision-converted weights).", MODEL, kind=str)
    head_init: str = option("he", "Initialisation of the new classifier.", MODEL,
                            ("he", "glorot"))
    model_widths: List[int] = option([], "small_resnet only: channels per stage (default "
                                     "16,32,64).", MODEL, kind=int)
    freeze_units: int = option(0, "Freeze the first k units (stem, then residual blocks: "
                               "Li et al. 2018, Figure 3).", MODEL, bound=NON_NEGATIVE)
    freeze_batch_norm: bool = option(False, "Run every batch-norm layer in inference mode "
                                     "(statistics and affine parameters frozen).", MODEL)

    def problems(self):
        out = []
        if self.source == "custom" and not (self.weights and self.source_classes):
            out.append("--source=custom needs --weights (your source network's weights file) "
                       "and --source_classes (the width of its classifier).")
        if self.source == "none" and self.weights:
            out.append("--source=none trains from scratch but --weights was given; set "
                       "--source.")
        if self.model_widths and self.arch != "small_resnet":
            out.append("--model_widths applies to --arch=small_resnet only.")
        return out


@dataclasses.dataclass
class DataConfig:
    """The target dataset, its per-class subsample and the stored image size."""
    dataset: str = option("stanford_dogs120", "Target dataset ('synthetic': random images, "
                          "for tests; 'fashion_mnist': the demo's IDX files).", RESULT,
                          DATASETS)
    data_dir: Optional[str] = option(None, "Data directory (tfds data_dir; for fashion_mnist "
                                     "the directory with the IDX files).", RESULT, kind=str)
    manual_dir: Optional[str] = option(None, "Directory with the manually downloaded files "
                                       "(default <data_dir>/manual/<dataset>).", RESULT,
                                       kind=str)
    classes: List[str] = option([], "The classes kept, relabelled 0..n-1 in this order "
                                "(default all): folder or class names (class_folders and the "
                                "tfds datasets), integer labels (fashion_mnist, synthetic).",
                                RESULT, kind=str)
    examples_per_class: int = option(0, "Keep this many training images per class (drawn "
                                     "with --split_seed; 0 = all; synthetic: 0 means 16).",
                                     RESULT, bound=NON_NEGATIVE)
    validation_fraction: float = option(0.0, "Share of the kept training images of each "
                                        "class held out as a validation split; when > 0 the "
                                        "model trains on the rest and is evaluated on the "
                                        "validation split, never on the test set (model "
                                        "selection).", RESULT, bound=NON_NEGATIVE)
    cv_folds: int = option(0, "k-fold cross-validation: cut the kept training images of "
                           "each class into this many folds (0: none); the run trains on all "
                           "folds but --cv_fold and is evaluated on that one, never on the "
                           "test set (Li et al. 2018, Section 4.1: alpha chosen by "
                           "cross-validation; tftransfer select runs every fold).", RESULT,
                           bound=NON_NEGATIVE)
    cv_fold: Optional[int] = option(None, "The validation fold of --cv_folds, 0..K-1.",
                                    RESULT, kind=int)
    split_seed: int = option(0, "Seed of the per-class subsample, validation split and "
                             "folds (synthetic: also of its images; caltech256_*: also of "
                             "its own train/test draw).", RESULT)
    resize: int = option(256, "Stored image size: the side of the square resize, or the "
                         "shorter side with --keep_aspect (fashion_mnist: the 28x28 images "
                         "are upscaled, bilinear, to this side).", RESULT, bound=POSITIVE_INT)
    keep_aspect: bool = option(False, "Resize keeping the aspect ratio, shorter side "
                               "--resize (the paper's starred variant).", RESULT)
    crop_size: int = option(224, "Training and test crop size (the network's input size).",
                            RESULT, bound=POSITIVE_INT)
    mean: str = option("dataset", "Mean subtracted before the network's preprocessing: the "
                       "target training set's per-channel mean, ImageNet's, or 'none' (the "
                       "preprocessing mode's own).", RESULT, MEANS)
    mirror: Optional[bool] = option(None, "Random horizontal mirror in training (default: "
                                    "the dataset's: on, as in Li et al. 2018, Section 4.1; "
                                    "off for fashion_mnist, the demo's).", RESULT, kind=bool)
    pad: int = option(0, "Zero pixels added on each side of a training image before its "
                      "random crop (0: none, as in the paper).", RESULT, bound=NON_NEGATIVE)
    color_jitter: Optional[bool] = option(None, "Random brightness/saturation/contrast in "
                                          "training (default: on for RGB images, as in the "
                                          "paper; grey images have none).", RESULT,
                                          kind=bool)
    rgb_to_grey: bool = option(False, "tfds-prepared datasets (class_folders, ...): turn the "
                               "stored RGB images into one grey channel (ITU-R 601 luma, "
                               "0.2989 R + 0.587 G + 0.114 B) for a source network trained on "
                               "grey images, such as the demo's.", RESULT)
    synthetic: SyntheticOptions = section(SyntheticOptions)
    fashion_mnist: FashionMnistOptions = section(FashionMnistOptions)
    stanford_dogs120: StanfordDogsOptions = section(StanfordDogsOptions)
    scenes: ScenesOptions = section(ScenesOptions)

    def options(self, dataset=None):
        """The options of ``dataset`` (default: the selected one); :data:`NO_OPTIONS` for a
        dataset without options of its own."""
        return getattr(self, dataset or self.dataset, NO_OPTIONS)

    def problems(self, config):
        options, out = self.options(), []
        for name in DATASETS:  # options of the datasets not selected must stay unset
            other = self.options(name)
            if name == self.dataset or other is NO_OPTIONS:
                continue
            for f in dataclasses.fields(other):
                if getattr(other, f.name) != default_value(f):
                    out.append(f"--{flag_name(f)} applies to --dataset={name} only.")
        here = f"--dataset={self.dataset}"
        if options.in_memory:
            if self.manual_dir:
                out.append(f"--manual_dir applies to the tfds-prepared datasets; {here} is "
                           "read into memory: drop it (--data_dir names its files).")
            if self.keep_aspect:
                out.append(f"--keep_aspect applies to the tfds-prepared datasets; {here} "
                           "has square images: drop it.")
            if self.rgb_to_grey:
                out.append(f"--rgb_to_grey applies to the tfds-prepared datasets, stored as "
                           f"RGB; {here} is read into memory: drop it (fashion_mnist is grey "
                           "unless --grey_to_rgb).")
        drawn = self.examples_per_class or self.validation_fraction or self.cv_folds
        if self.split_seed and not drawn and self.dataset not in SEEDED_DATASETS:
            out.append(f"--split_seed={self.split_seed} draws the per-class subsample and "
                       f"the validation images, but {here} draws nothing here: set "
                       "--examples_per_class, --validation_fraction or --cv_folds, or drop "
                       "--split_seed.")
        if math.isfinite(self.validation_fraction) and not self.validation_fraction < 1:
            out.append(f"--validation_fraction={self.validation_fraction} must be < 1.")
        out += self._fold_problems()
        if config.task.task == "classification" and self.crop_size > self.resize:
            out.append(f"--crop_size={self.crop_size} exceeds --resize={self.resize}.")
        return out + options.problems(config)

    def _fold_problems(self):
        folds, fold = self.cv_folds, self.cv_fold
        if not folds:
            return [] if fold is None else [
                f"--cv_fold={fold} without --cv_folds: set --cv_folds=K (K >= 2) for k-fold "
                "cross-validation, or drop --cv_fold."]
        if self.validation_fraction:
            return [f"--cv_folds={folds} and --validation_fraction={self.validation_fraction}"
                    " are two ways to hold out validation images: give one of them."]
        if folds < 2:
            return [f"--cv_folds={folds}: k-fold cross-validation needs K >= 2 (0: none)."]
        if fold is None or not 0 <= fold < folds:
            return [f"--cv_fold={fold} with --cv_folds={folds}: choose the validation fold "
                    f"in 0..{folds - 1} (tftransfer select runs them all)."]
        return []


@dataclasses.dataclass
class PenaltyConfig:
    """The regulariser (Li et al. 2018, Section 3): scheme and strengths."""
    scheme: str = option("l2_sp", "Regularisation scheme.", MODEL, SCHEMES)
    alpha: float = option(0.1, "Strength on the inherited weights (Li et al. 2018, Section "
                          "4.1: 0.1 for l2_sp; 1e-4 for l2 in the authors' script).", MODEL,
                          bound=NON_NEGATIVE)
    beta: float = option(0.01, "Strength of L2 on the new classifier.", MODEL,
                         bound=NON_NEGATIVE)
    epsilon: float = option(1e-16, "Smoothing constant of l1_sp and the group-lasso "
                            "schemes.", MODEL, bound=NON_NEGATIVE)
    penalize_all_trainable: bool = option(False, "Also penalise biases and batch-norm "
                                          "parameters (TLlib's rule).", MODEL)
    fisher_file: Optional[str] = option(None, "Fisher diagonal (.npz of tftransfer.fisher."
                                        "save, tftransfer fisher), for the Fisher "
                                        "schemes.", MODEL, kind=str)
    penalty_path: str = option("loss", "How the penalty's gradient is computed: 'loss' "
                               "(model.losses, differentiated) or 'fused' (its closed form "
                               "added in the optimizer step: the same update, "
                               "tftransfer.fused_penalty).", MODEL, PATHS, since=SPEED_RELEASE)

    def problems(self):
        out = []
        if self.scheme in FISHER_SCHEMES and not self.fisher_file:
            out.append(f"--scheme={self.scheme} needs --fisher_file (a Fisher diagonal .npz "
                       "from tftransfer fisher).")
        if self.fisher_file and self.scheme not in FISHER_SCHEMES:
            out.append(f"--fisher_file is only used by {list(FISHER_SCHEMES)}, not "
                       f"--scheme={self.scheme}; drop it or change the scheme.")
        return out


def suggested_boundaries(bounds, train_steps):
    """``--lr_boundaries`` that fit ``train_steps``, for the refusal of ``bounds`` that do
    not (never applied silently): ``bounds`` sorted without repeats when they fit;
    otherwise scaled so that the last one falls at the recipe's share of training (its
    default boundaries over its default steps: 6000/9000), rounded, those outside
    ``(0, train_steps)`` dropped (``[]``: a constant learning rate)."""
    positive = sorted({b for b in bounds if b > 0})
    if all(b < train_steps for b in positive):
        return positive
    fields = {f.name: f for f in dataclasses.fields(OptimConfig)}
    recipe = (max(default_value(fields["lr_boundaries"]))
              / default_value(fields["train_steps"]))
    scale = recipe * train_steps / positive[-1]
    return sorted({round(b * scale) for b in positive} & set(range(1, train_steps)))


@dataclasses.dataclass
class OptimConfig:
    """SGD with momentum and a piecewise-constant learning rate (Li et al. 2018,
    Section 4.1), the batch, the number of steps and the seed."""
    learning_rate: float = option(0.01, "Initial learning rate (Li et al. 2018: 0.005, 0.01 "
                                  "or 0.02 per task).", MODEL, bound=POSITIVE)
    lr_boundaries: List[int] = option([6000], "Steps after which the learning rate is "
                                      "multiplied by --lr_decay_factor (paper: 6000; the "
                                      "authors' script: 5000).", MODEL, kind=int)
    lr_decay_factor: float = option(0.1, "Factor applied at each boundary.", MODEL,
                                    bound=POSITIVE)
    momentum: float = option(0.9, "SGD momentum.", MODEL)
    lr_multipliers: List[str] = option([], "Per-group learning-rate multipliers, entries "
                                       "'UNIT_OR_LAYER=MULTIPLIER' or 'first:K=MULTIPLIER' "
                                       "(the first K units), e.g. first:4=0.01,predictions=1.",
                                       MODEL, kind=str)
    batch_size: int = option(64, "Global batch size, whatever the number of replicas.",
                             RESULT, bound=POSITIVE_INT)
    train_steps: int = option(9000, "Training iterations.", RESULT, bound=POSITIVE_INT)
    seed: int = option(0, "Seed of the new layer's initialisation, shuffling and "
                       "augmentation: runs differing only in it are the paper's repeats.",
                       RESULT)
    deterministic: bool = option(False, "Enable TensorFlow op determinism (bitwise "
                                 "reproducible runs, slower on GPU).", RESULT)

    def problems(self, schedule="piecewise"):
        """Problems of these options under the ``--lr_schedule`` ``schedule`` (``poly``
        reads no boundary: :class:`TaskConfig` refuses them set)."""
        out = []
        if math.isfinite(self.momentum) and not 0 <= self.momentum < 1:
            out.append(f"--momentum={self.momentum} must be in [0, 1) (the recipe: 0.9).")
        bounds = list(self.lr_boundaries)
        if schedule == "piecewise" and (
                bounds != sorted(set(bounds)) or any(b <= 0 or b >= self.train_steps
                                                     for b in bounds)):
            fit = suggested_boundaries(bounds, self.train_steps)
            how = ("sorted, each once" if fit == sorted({b for b in bounds if b > 0}) else
                   f"the last decay at the recipe's {RECIPE_DECAY_AT}, earlier ones scaled "
                   "alike")
            out.append(f"--lr_boundaries={bounds} must be increasing steps strictly between 0 "
                       f"and --train_steps={self.train_steps}; for {self.train_steps} steps "
                       f"pass --lr_boundaries={','.join(map(str, fit))} ({how}), or "
                       "--lr_boundaries= for a constant learning rate.")
        for entry in self.lr_multipliers:
            try:
                parse_multiplier(entry)
            except ValueError as error:
                out.append(str(error))
        return out


@dataclasses.dataclass
class EvalConfig:
    """The test crops, and the source task evaluated before and after fine-tuning
    (Li et al. 2018, Table 5)."""
    eval_crops: int = option(1, "Test crops per image: 1 (central crop) or 10 (corners, "
                             "centre and their mirrors, probabilities averaged).", RESULT,
                             (1, 10))
    eval_batch_size: int = option(64, "Batch size of the evaluations.", RESULT,
                                  bound=POSITIVE_INT)
    source_eval_dataset: Optional[str] = option(None, "Evaluate the source task (Table 5) on "
                                                "this dataset's test/validation split with "
                                                "the source classifier put back, before and "
                                                "after fine-tuning.", RESULT, DATASETS)
    source_eval_data_dir: Optional[str] = option(None, "data_dir of --source_eval_dataset "
                                                 "(default --data_dir).", RESULT, kind=str)
    source_eval_examples: int = option(0, "Evaluate the source task on at most this many "
                                       "images (0 = all).", RESULT, bound=NON_NEGATIVE)

    def problems(self, config):
        out = []
        if self.eval_crops == 10 and config.data.resize <= config.data.crop_size:
            out.append(f"--eval_crops=10 needs images larger than the crop: --resize="
                       f"{config.data.resize} <= --crop_size={config.data.crop_size} makes "
                       "the corner crops equal the centre one; raise --resize or use "
                       "--eval_crops=1.")
        if not self.source_eval_dataset:
            for name in ("source_eval_data_dir", "source_eval_examples"):
                if getattr(self, name):
                    out.append(f"--{name} applies with --source_eval_dataset only; set it "
                               "or drop the flag.")
        if self.source_eval_dataset and config.model.source == "none":
            out.append("--source_eval_dataset needs a pretrained source (it puts the source "
                       "classifier back); --source=none has none.")
        return out


@dataclasses.dataclass
class RuntimeConfig:
    """Where the run lives, what it saves and logs, and the devices it runs on."""
    output_dir: Optional[str] = option(None, "Where checkpoints, logs, the exported model "
                                       "and results.json go (default: runs/<dataset>-"
                                       "<scheme>-<hash of the flags that change the "
                                       "result>, one directory per run).", OUTPUT, kind=str)
    strategy: str = option("default", "Distribution strategy.", MODEL, STRATEGIES)
    tpu: Optional[str] = option(None, "TPU name or address for --strategy=tpu.", MODEL,
                                kind=str)
    cpu_logical_devices: int = option(0, "Split the CPU into this many logical devices "
                                      "(mirrored training without accelerators, for tests).",
                                      MODEL)
    precision: str = option("float32", "Keras dtype policy; mixed_float16 adds loss "
                            "scaling (LossScaleOptimizer).", MODEL, PRECISIONS)
    xla: bool = option(False, "Compile the train step with XLA (jit_compile).", MODEL)
    checkpoint_every: int = option(500, "Checkpoint every N steps (0: only at the end).",
                                   OUTPUT, bound=NON_NEGATIVE)
    log_every: int = option(100, "Log line, train_log.csv row and TensorBoard scalars every "
                            "N steps (0: one row at the end only and no log lines, which "
                            "lets Keras dispatch steps asynchronously).", OUTPUT,
                            bound=NON_NEGATIVE)
    deviation_layers: List[str] = option([], "Kernels whose deviation ||W - W0||_F/sqrt(n) "
                                         "is logged (variable paths; default: first, middle "
                                         "and last inherited kernel).", RESULT, kind=str)
    export: bool = option(True, "Export the inference model as a SavedModel and check it.",
                          OUTPUT)
    save_weights: bool = option(False, "Also save the trained weights as model.weights.h5 "
                                "(usable as --weights of a later run with --source=custom).",
                                OUTPUT)
    verbose: int = option(1, "0: quiet; 1: log lines; 2: also the Keras progress bar.",
                          OUTPUT, (0, 1, 2))
    summary_csv: str = option("auto", "CSV table the finished run appends its row to (flags "
                              "that change the result, metrics, timings; "
                              "tftransfer.training.summary): auto = summary.csv in the "
                              "parent of --output_dir (the runs folder), a path, or empty "
                              "for none.", OUTPUT)

    def problems(self):
        out = []
        if self.tpu and self.strategy != "tpu":
            out.append(f"--tpu applies with --strategy=tpu only, not --strategy="
                       f"{self.strategy}; set it or drop --tpu.")
        if self.strategy == "tpu" and not self.tpu:
            out.append("--strategy=tpu needs --tpu (the TPU name or grpc:// address; 'local' "
                       "for a TPU VM).")
        if self.strategy == "multi_worker" and "TF_CONFIG" not in os.environ:
            out.append("--strategy=multi_worker reads the cluster from the TF_CONFIG "
                       "environment variable, which is not set.")
        backend = keras.backend.backend()
        if backend != "tensorflow":
            out.append(f"The driver runs on Keras' TensorFlow backend only (its tf.data "
                       f"inputs, tf.distribute strategies, checkpoints and SavedModel "
                       f"export are TensorFlow's), but KERAS_BACKEND={backend}: unset it or "
                       "set KERAS_BACKEND=tensorflow. The penalties themselves "
                       "(tftransfer.penalize) run on any backend: docs/backends.md.")
        return out


SEG = SEGMENTATION_RELEASE


@dataclasses.dataclass
class TaskConfig:
    """The task (classification, Li et al. 2018 Section 4.1; or semantic segmentation,
    Section 4.2 and Tables 3-4) and the options of segmentation: head, output stride,
    batch-norm mode, auxiliary loss, learning-rate schedule, training scale and
    evaluation. Every option here is left out of a classification run's identity at its
    default (``since``), so classification digests are those of before."""
    task: str = option("classification", "The task: image classification, or semantic "
                       "segmentation (per-pixel labels, 255 ignored; the datasets "
                       f"{list(SEGMENTATION_DATASETS)}).", MODEL, TASKS, since=SEG)
    seg_head: str = option("fcn", "segmentation: the head on the dilated backbone (Li et "
                           "al. 2018, Table 4: FCN, ResNet-101 with a 1x1 classifier, "
                           "DeepLab's ASPP, PSPNet's pyramid pooling).", MODEL, SEG_HEADS,
                           since=SEG)
    output_stride: Optional[int] = option(None, "segmentation: input size / feature size "
                                          "of the backbone (last strides replaced by "
                                          "dilation): 8, 16 or 32 for the ImageNet ResNets "
                                          "(default 8), 1, 2 or 4 for small_resnet (default "
                                          "4).", MODEL, kind=int, since=SEG)
    batch_norm_mode: str = option("train", "segmentation: the inherited batch norm: frozen "
                                  "(statistics and scale/offset), frozen_stats (statistics "
                                  "frozen, scale and offset trained) or train (all "
                                  "trained).", MODEL, BATCH_NORM_MODES, since=SEG)
    synchronized_bn: Optional[bool] = option(None, "segmentation: synchronise batch-norm "
                                             "statistics across replicas (default: on under "
                                             "--strategy=mirrored/multi_worker).", MODEL,
                                             kind=bool, since=SEG)
    aux_loss_weight: Optional[float] = option(None, "segmentation, --seg_head=pspnet: weight "
                                              "of the auxiliary loss on the fourth stage "
                                              "(default 0.4; 0 removes the auxiliary head).",
                                              MODEL, kind=float, since=SEG)
    lr_schedule: str = option("piecewise", "Learning-rate schedule: piecewise constant "
                              "(--lr_boundaries, --lr_decay_factor) or poly, lr * (1 - t/T)"
                              " ** --poly_power decaying to 0 at T = --train_steps (DeepLab, "
                              "PSPNet: Li et al. 2018, Table 3). Both tasks.", MODEL,
                              LR_SCHEDULES, since=SEG)
    poly_power: float = option(0.9, "Power of --lr_schedule=poly.", MODEL, bound=POSITIVE,
                               since=SEG)
    train_scale_min: Optional[float] = option(None, "segmentation: smallest random scale "
                                              "of a training image (with --train_scale_max; "
                                              "default none: no rescaling; the paper's "
                                              "DeepLab/PSPNet: 0.5).", RESULT, kind=float,
                                              since=SEG)
    train_scale_max: Optional[float] = option(None, "segmentation: largest random scale "
                                              "(paper: 2.0).", RESULT, kind=float, since=SEG)
    seg_eval: str = option("whole", "segmentation evaluation: whole images, sliding "
                           "--eval_crop windows, or multi_scale (--eval_scales, --eval_flip; "
                           "each scale whole or, with --eval_crop, sliding).", RESULT,
                           SEG_EVALS, since=SEG)
    eval_crop: Optional[int] = option(None, "segmentation: side of the sliding window "
                                      "(default: --crop_size for --seg_eval=sliding).",
                                      RESULT, kind=int, since=SEG)
    eval_stride: Optional[int] = option(None, "segmentation: step of the sliding window "
                                        "(default: ceil(2/3 * --eval_crop)).", RESULT,
                                        kind=int, since=SEG)
    eval_scales: List[float] = option([], "segmentation, --seg_eval=multi_scale: the "
                                      "scales (default 0.5,0.75,1,1.25,1.5,1.75).", RESULT,
                                      kind=float, since=SEG)
    eval_flip: bool = option(False, "segmentation, --seg_eval=multi_scale: also the "
                             "mirrored images.", RESULT, since=SEG)

    SEGMENTATION_ONLY = ("seg_head", "output_stride", "batch_norm_mode", "synchronized_bn",
                         "aux_loss_weight", "train_scale_min", "train_scale_max",
                         "seg_eval", "eval_crop", "eval_stride", "eval_scales", "eval_flip")

    def problems(self, config):
        out = []
        if self.lr_schedule == "poly":
            o = config.optim
            if list(o.lr_boundaries) not in ([], [6000]) or o.lr_decay_factor != 0.1:
                out.append("--lr_boundaries and --lr_decay_factor apply to "
                           "--lr_schedule=piecewise; --lr_schedule=poly decays to 0 at "
                           "--train_steps: drop them.")
        elif self.poly_power != 0.9:
            out.append("--poly_power applies to --lr_schedule=poly only; set it or drop "
                       "--poly_power.")
        dataset = config.data.dataset
        if self.task == "classification":
            for name in self.SEGMENTATION_ONLY:
                f = next(f for f in dataclasses.fields(self) if f.name == name)
                if getattr(self, name) != default_value(f):
                    out.append(f"--{name} applies to --task=segmentation only; set it or "
                               f"drop --{name}.")
            if dataset in SEGMENTATION_DATASETS:
                out.append(f"--dataset={dataset} is a segmentation dataset (per-pixel "
                           "labels): add --task=segmentation.")
            return out
        return out + self._segmentation_problems(config)

    def _segmentation_problems(self, config):
        m, d, e, o = config.model, config.data, config.evaluation, config.optim
        here = "--task=segmentation"
        out = []
        if d.dataset not in SEGMENTATION_DATASETS:
            out.append(f"--dataset={d.dataset} is a classification dataset; {here} takes one "
                       f"of {list(SEGMENTATION_DATASETS)}.")
        if m.arch not in SEG_ARCHS:
            out.append(f"--arch={m.arch}: {here} builds a dilated ResNet, one of "
                       f"{list(SEG_ARCHS)}.")
        strides = (1, 2, 4) if m.arch == "small_resnet" else (8, 16, 32)
        if self.output_stride is not None and self.output_stride not in strides:
            out.append(f"--output_stride={self.output_stride} is not one of {list(strides)} "
                       f"for --arch={m.arch}.")
        if self.aux_loss_weight is not None and self.seg_head != "pspnet":
            out.append(f"--aux_loss_weight applies to --seg_head=pspnet (the only head with "
                       f"an auxiliary loss), not --seg_head={self.seg_head}; drop it.")
        if self.aux_loss_weight is not None and not (math.isfinite(self.aux_loss_weight)
                                                     and self.aux_loss_weight >= 0):
            out.append(f"--aux_loss_weight={self.aux_loss_weight} must be finite and >= 0.")
        refused = {
            "eval_crops": (e.eval_crops != 1, "is the classification test (ten crops); "
                           "segmentation evaluates with --seg_eval=whole|sliding|multi_scale"),
            "source_eval_dataset": (bool(e.source_eval_dataset), "puts a source classifier "
                                    "back (Table 5), which a segmentation network has not"),
            "freeze_batch_norm": (m.freeze_batch_norm, "is classification's; segmentation "
                                  "sets --batch_norm_mode=frozen"),
            "freeze_units": (bool(m.freeze_units), "is not implemented for segmentation"),
            "lr_multipliers": (bool(o.lr_multipliers), "is not implemented for "
                               "segmentation"),
            "pad": (bool(d.pad), "is classification's; segmentation crops pad with the "
                    "ignore label where the image is smaller"),
            "resize": (d.resize != 256, "is classification's; segmentation uses the images "
                       "at their size (random scale: --train_scale_min/--train_scale_max)"),
        }
        for name, (given, why) in refused.items():
            if given:
                out.append(f"--{name} {why}: drop it.")
        if d.dataset in SEGMENTATION_PIPELINE_DATASETS:
            for name, given in (("classes", d.classes), ("examples_per_class",
                                 d.examples_per_class), ("validation_fraction",
                                 d.validation_fraction), ("cv_folds", d.cv_folds),
                                ("keep_aspect", d.keep_aspect), ("rgb_to_grey",
                                                                 d.rgb_to_grey)):
                if given:
                    out.append(f"--{name} does not apply to --dataset={d.dataset}: its "
                               "builder has its own training and validation images, "
                               "and the run is evaluated on the validation split; drop it.")
            if d.mean == "dataset":
                out.append(f"--mean=dataset is not computed for --dataset={d.dataset}; set "
                           "--mean=imagenet (the source network's) or --mean=none.")
            if d.dataset == "segmentation_folders" and not d.manual_dir:
                out.append("--dataset=segmentation_folders needs --manual_dir, the root of "
                           "your tree <root>/{train,validation}/{images,masks}/ "
                           "(docs/segmentation_data.md).")
        out += self._scale_problems() + self._eval_problems(config)
        return out

    def _scale_problems(self):
        low, high = self.train_scale_min, self.train_scale_max
        if low is None and high is None:
            return []
        if low is None or high is None:
            return ["--train_scale_min and --train_scale_max go together (the range of the "
                    "random scale, e.g. 0.5 and 2.0); give both or neither."]
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
            return [f"--train_scale_min={low}, --train_scale_max={high}: need 0 < min <= max, "
                    "finite."]
        return []

    def _eval_problems(self, config):
        out = []
        sliding = self.seg_eval == "sliding" or (self.seg_eval == "multi_scale"
                                                 and self.eval_crop is not None)
        if not sliding:
            for name in ("eval_crop", "eval_stride"):
                if getattr(self, name) is not None:
                    out.append(f"--{name} applies to sliding windows (--seg_eval=sliding, "
                               f"or multi_scale with --eval_crop), not --seg_eval="
                               f"{self.seg_eval}; drop it.")
        crop = self.window(config)
        if sliding and crop is not None and crop < 1:
            out.append(f"--eval_crop={crop} must be a positive integer.")
        elif sliding and self.eval_stride is not None and not 0 < self.eval_stride <= crop:
            out.append(f"--eval_stride={self.eval_stride} must be in 1..--eval_crop={crop}.")
        if self.seg_eval != "multi_scale":
            if self.eval_scales:
                out.append(f"--eval_scales applies to --seg_eval=multi_scale, not "
                           f"{self.seg_eval}; drop it.")
            if self.eval_flip:
                out.append(f"--eval_flip applies to --seg_eval=multi_scale, not "
                           f"{self.seg_eval} (multi_scale with --eval_scales=1 and --eval_flip "
                           "mirrors at one scale).")
        if any(not (math.isfinite(s) and s > 0) for s in self.eval_scales):
            out.append(f"--eval_scales={self.eval_scales} must be finite and > 0.")
        return out

    def window(self, config):
        """The sliding window's side (``--eval_crop``, default ``--crop_size`` for
        ``--seg_eval=sliding``), None for whole images."""
        if self.eval_crop is not None:
            return self.eval_crop
        return config.data.crop_size if self.seg_eval == "sliding" else None

    def stride(self, config):
        """The sliding window's step (``--eval_stride``, default ceil(2/3 window))."""
        crop = self.window(config)
        if crop is None:
            return None
        return self.eval_stride or -(-2 * crop // 3)

    def scales(self):
        """The multi-scale test's scales (default PSPNet's 0.5 .. 1.75)."""
        return list(self.eval_scales) or [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


MTH = METHODS_RELEASE


def _hp(method, name):
    """The registry's default of hyper-parameter ``name`` of ``method``: the flag's."""
    return methods_lib.get(method).hyper_parameters[name]


@dataclasses.dataclass
class MethodConfig:
    """The fine-tuning method beyond the ``--scheme`` penalty (issue 19,
    :mod:`tftransfer.methods`) and its hyper-parameters, one flag each with the registry's
    default (:mod:`tftransfer.training.methods` builds them). Every option here is declared
    with ``since``: at its default it leaves a run's identity digest as it was before
    methods existed. A hyper-parameter of another method than ``--method`` is refused."""
    method: str = option(NO_METHOD, "Fine-tuning method (docs/driver.md, Methods): 'none' "
                         "is the --scheme penalty alone; l2_sp_k, group_lasso_sp_layer, "
                         "delta, delta_fm replace --scheme (strengths: --alpha/--beta/"
                         "--epsilon, --delta_alpha/--delta_beta); the others add to "
                         "--scheme (the papers' baselines: --scheme=l2 or none).", MODEL,
                         METHODS, since=MTH)
    delta_alpha: float = option(_hp("delta", "alpha"), "delta, delta_fm: strength of the "
                                "feature-map distance to the starting point.", MODEL,
                                bound=NON_NEGATIVE, since=MTH)
    delta_beta: float = option(_hp("delta", "beta"), "delta, delta_fm: L2 strength "
                               "beta/2 ||w_new||^2 on the new classifier.", MODEL,
                               bound=NON_NEGATIVE, since=MTH)
    delta_temperature: float = option(_hp("delta", "temperature"), "delta: temperature of "
                                      "the softmax of the channel attention.", MODEL,
                                      bound=POSITIVE, since=MTH)
    delta_head_epochs: int = option(_hp("delta", "head_epochs"), "delta: epochs the new "
                                    "head is trained on a copy (frozen backbone) before the "
                                    "attention is measured.", MODEL, bound=NON_NEGATIVE,
                                    since=MTH)
    delta_layers: List[str] = option([], "delta, delta_fm: layers whose feature maps are "
                                     "compared (default: the last unit of each stage).",
                                     MODEL, kind=str, since=MTH)
    bss_eta: float = option(_hp("bss", "eta"), "bss: strength eta of the k smallest squared "
                            "singular values of the batch's features.", MODEL,
                            bound=NON_NEGATIVE, since=MTH)
    bss_k: int = option(_hp("bss", "k"), "bss: number k of smallest singular values "
                        "shrunk.", MODEL, bound=POSITIVE_INT, since=MTH)
    lwf_lambda: float = option(_hp("lwf", "lambda"), "lwf: strength of the distillation of "
                               "the starting point's source predictions.", MODEL,
                               bound=NON_NEGATIVE, since=MTH)
    lwf_temperature: float = option(_hp("lwf", "temperature"), "lwf: distillation "
                                    "temperature T.", MODEL, bound=POSITIVE, since=MTH)
    co_tuning_lambda: float = option(_hp("co_tuning", "lambda"), "co_tuning: strength of "
                                     "the source-head cross-entropy to p(y_s | y_t).", MODEL,
                                     bound=NON_NEGATIVE, since=MTH)
    co_tuning_calibration_scale: float = option(
        _hp("co_tuning", "calibration_scale"), "co_tuning: scale c of the source logits in "
        "the relationship softmax(c * s0(x)) (1: no calibration).", MODEL, bound=POSITIVE,
        since=MTH)
    stochnorm_p: float = option(_hp("stochnorm", "p"), "stochnorm: probability that a "
                                "channel uses the batch statistics in training.", MODEL,
                                bound=NON_NEGATIVE, since=MTH)
    pgm_gamma: float = option(_hp("mars_pgm", "gamma"), "mars_pgm, frobenius_pgm: radius of "
                              "the ball around W0 each inherited kernel is projected onto.",
                              MODEL, bound=POSITIVE, since=MTH)
    pgm_gamma_new: Optional[float] = option(None, "mars_pgm, frobenius_pgm: radius of the "
                                            "ball around zero of the new classifier "
                                            "(default: free).", MODEL, kind=float,
                                            since=MTH)
    spd_strength: float = option(_hp("spd", "strength"), "spd: strength lambda of the "
                                 "selective projection decay toward W0.", MODEL,
                                 bound=NON_NEGATIVE, since=MTH)
    probe_epochs: int = option(_hp("lp_ft", "probe_epochs"), "lp_ft, wise_ft: most epochs of "
                               "the linear probe on the frozen features (it stops earlier "
                               "when the loss stops improving).", RESULT,
                               bound=POSITIVE_INT, since=MTH)
    probe_learning_rate: float = option(_hp("lp_ft", "probe_learning_rate"), "lp_ft, "
                                        "wise_ft: Adam learning rate of the linear probe.",
                                        RESULT, bound=POSITIVE, since=MTH)
    probe_l2: float = option(_hp("lp_ft", "probe_l2"), "lp_ft, wise_ft: l2/2 ||W||^2 on the "
                             "probed head's kernel.", RESULT, bound=NON_NEGATIVE, since=MTH)
    wise_ft_alpha: float = option(_hp("wise_ft", "alpha"), "wise_ft: the mixing coefficient "
                                  "a of the final model (1 - a) theta_0 + a theta_1, "
                                  "evaluated and exported (choose it on validation runs, "
                                  "never on the test set).", RESULT, bound=NON_NEGATIVE,
                                  since=MTH)
    wise_ft_grid: List[float] = option(list(wise_ft_lib.DEFAULT_GRID), "wise_ft: the "
                                       "coefficients a also evaluated, each score recorded "
                                       "in results.json (on the run's evaluated split).",
                                       RESULT, kind=float, since=MTH)

    # flag -> the methods it applies to (a non-default value is refused for the others).
    APPLIES = {
        "delta_alpha": ("delta", "delta_fm"), "delta_beta": ("delta", "delta_fm"),
        "delta_temperature": ("delta",), "delta_head_epochs": ("delta",),
        "delta_layers": ("delta", "delta_fm"), "bss_eta": ("bss",), "bss_k": ("bss",),
        "lwf_lambda": ("lwf",), "lwf_temperature": ("lwf",),
        "co_tuning_lambda": ("co_tuning",), "co_tuning_calibration_scale": ("co_tuning",),
        "stochnorm_p": ("stochnorm",), "pgm_gamma": ("mars_pgm", "frobenius_pgm"),
        "pgm_gamma_new": ("mars_pgm", "frobenius_pgm"), "spd_strength": ("spd",),
        "probe_epochs": ("lp_ft", "wise_ft"), "probe_learning_rate": ("lp_ft", "wise_ft"),
        "probe_l2": ("lp_ft", "wise_ft"), "wise_ft_alpha": ("wise_ft",),
        "wise_ft_grid": ("wise_ft",),
    }
    # method -> {registry hyper-parameter: flag} (the weight penalties' are the scheme's).
    PARAMETERS = {
        "delta_fm": {"alpha": "delta_alpha", "beta": "delta_beta", "layers": "delta_layers"},
        "delta": {"alpha": "delta_alpha", "beta": "delta_beta",
                  "temperature": "delta_temperature", "head_epochs": "delta_head_epochs",
                  "layers": "delta_layers"},
        "bss": {"eta": "bss_eta", "k": "bss_k"},
        "lwf": {"lambda": "lwf_lambda", "temperature": "lwf_temperature"},
        "co_tuning": {"lambda": "co_tuning_lambda",
                      "calibration_scale": "co_tuning_calibration_scale"},
        "stochnorm": {"p": "stochnorm_p"},
        "mars_pgm": {"gamma": "pgm_gamma", "gamma_new": "pgm_gamma_new"},
        "frobenius_pgm": {"gamma": "pgm_gamma", "gamma_new": "pgm_gamma_new"},
        "spd": {"strength": "spd_strength"},
        "l2_sp_k": {"alpha": "alpha", "beta": "beta"},
        "group_lasso_sp_layer": {"alpha": "alpha", "beta": "beta", "epsilon": "epsilon"},
        "lp_ft": {"probe_epochs": "probe_epochs", "probe_learning_rate":
                  "probe_learning_rate", "probe_l2": "probe_l2"},
        "wise_ft": {"alpha": "wise_ft_alpha", "grid": "wise_ft_grid",
                    "probe_epochs": "probe_epochs", "probe_learning_rate":
                    "probe_learning_rate", "probe_l2": "probe_l2"},
    }
    # Methods that replace the --scheme penalty (the others add to it).
    REPLACES_SCHEME = ("l2_sp_k", "group_lasso_sp_layer", "delta", "delta_fm")
    # Methods that need a pretrained source (a starting point, or its source head).
    NEED_SOURCE = ("delta", "delta_fm", "lwf", "co_tuning", "mars_pgm", "frobenius_pgm",
                   "spd", "l2_sp_k", "group_lasso_sp_layer", "lp_ft", "wise_ft")
    OPTIMIZER_METHODS = ("mars_pgm", "frobenius_pgm", "spd")
    PROBED = ("lp_ft", "wise_ft")  # a linear-probe phase before fine-tuning

    def parameters(self, config):
        """``{registry hyper-parameter: value}`` of the selected method in ``config`` ({}
        for ``none``): what ``results.json`` records."""
        return {name: copy.deepcopy(get(config, flag))
                for name, flag in self.PARAMETERS.get(self.method, {}).items()}

    def problems(self, config):
        out, m = [], self.method
        for f in dataclasses.fields(self):
            if f.name == "method" or m in self.APPLIES[f.name]:
                continue
            if getattr(self, f.name) != default_value(f):
                users = ", ".join(self.APPLIES[f.name])
                out.append(f"--{f.name} is a hyper-parameter of --method={users}, not of "
                           f"--method={m}; set the method or drop --{f.name}.")
        if self.pgm_gamma_new is not None and not (math.isfinite(self.pgm_gamma_new)
                                                   and self.pgm_gamma_new > 0):
            out.append(f"--pgm_gamma_new={self.pgm_gamma_new} must be finite and > 0 (leave "
                       "it unset for a free classifier).")
        if not 0 <= self.stochnorm_p <= 1:
            out.append(f"--stochnorm_p={self.stochnorm_p} is a probability: give a value in "
                       "[0, 1].")
        if not 0 <= self.wise_ft_alpha <= 1:
            out.append(f"--wise_ft_alpha={self.wise_ft_alpha} must be in [0, 1].")
        grid = self.wise_ft_grid
        if not grid or any(not (math.isfinite(a) and 0 <= a <= 1) for a in grid):
            out.append(f"--wise_ft_grid={grid} must be one or more coefficients in [0, 1].")
        if m == NO_METHOD:
            return out
        if config.task.task != "classification":
            out.append(f"--method={m} is implemented for --task=classification only; drop it "
                       "(segmentation fine-tunes with --scheme).")
        if m in self.NEED_SOURCE and config.model.source == "none":
            out.append(f"--method={m} needs a pretrained source (a starting point and its "
                       "classifier), but --source=none has none; give a pretrained --source.")
        if m == "stochnorm" and config.model.freeze_batch_norm:
            out.append("--method=stochnorm replaces batch norm by a stochastic layer in "
                       "training, --freeze_batch_norm runs it in inference mode: give one.")
        if m in self.OPTIMIZER_METHODS and config.optim.lr_multipliers:
            out.append(f"--method={m} wraps the optimizer's update, as --lr_multipliers "
                       "does; the two together are not implemented: drop one.")
        if m != NO_METHOD and config.runtime.strategy in ("multi_worker", "tpu"):
            out.append(f"--method={m} is tested with --strategy=default and mirrored only; "
                       f"--strategy={config.runtime.strategy} is not supported with it.")
        return out


@dataclasses.dataclass
class RunConfig:
    """Everything one run needs, by section (see each option's help, or ``--helpfull``)."""
    model: ModelConfig = section(ModelConfig)
    data: DataConfig = section(DataConfig)
    penalty: PenaltyConfig = section(PenaltyConfig)
    optim: OptimConfig = section(OptimConfig)
    evaluation: EvalConfig = section(EvalConfig)
    runtime: RuntimeConfig = section(RuntimeConfig)
    task: TaskConfig = section(TaskConfig)
    method: MethodConfig = section(MethodConfig)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One option: its ``flag`` name, the attribute ``path`` from :class:`RunConfig`
    (e.g. ``("data", "fashion_mnist", "classes")``), the top-level ``section`` and the
    dataclass ``field`` that declares it."""
    flag: str
    path: tuple
    field: dataclasses.Field

    @property
    def section(self):
        return self.path[0]

    @property
    def effect(self):
        return self.field.metadata["effect"]


def flag_name(f):
    return f.metadata["flag"] or f.name


def default_value(f):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _leaves(cls, prefix=()):
    for f in dataclasses.fields(cls):
        if f.metadata.get("section"):
            yield from _leaves(f.default_factory, prefix + (f.name,))
        else:
            yield Leaf(flag_name(f), prefix + (f.name,), f)


LEAVES = {leaf.flag: leaf for leaf in _leaves(RunConfig)}
# Flags added after identities were first stored: left out of the digest at their default.
LATER_OPTIONS = tuple(name for name, leaf in LEAVES.items() if leaf.field.metadata["since"])
FLOAT_FIELDS = tuple(name for name, leaf in LEAVES.items() if leaf.field.type is float)


def names_with(*effects):
    """Flag names of the options whose effect is one of ``effects``."""
    return tuple(name for name, leaf in LEAVES.items() if leaf.effect in effects)


def get(config, name):
    """The value of the option of flag ``name`` in ``config``."""
    value = config
    for attribute in LEAVES[name].path:
        value = getattr(value, attribute)
    return value


def _unknown(names):
    unknown = sorted(set(names) - set(LEAVES))
    if unknown:
        raise TypeError(f"{unknown} are not options of the run configuration; the options "
                        "are the flags of python -m tftransfer.train --helpfull.")


def replace(config, **values):
    """A copy of ``config`` with the options of flags ``values`` (e.g. ``seed=1``)."""
    _unknown(values)
    out = copy.deepcopy(config)
    for name, value in values.items():
        *parents, attribute = LEAVES[name].path
        holder = out
        for parent in parents:
            holder = getattr(holder, parent)
        setattr(holder, attribute, list(value) if isinstance(value, (list, tuple)) and
                isinstance(default_value(LEAVES[name].field), list) else value)
    return out


def make(**values):
    """A :class:`RunConfig` of the defaults with the options of flags ``values``."""
    return replace(RunConfig(), **values)


def to_dict(config):
    """The configuration as a flat JSON-ready dict by flag name (the ``flags`` of
    results.json)."""
    return {name: copy.deepcopy(get(config, name)) for name in LEAVES}


def _generic_problems(c):
    """Problems found from the declarations: unknown choices, non-finite floats, ranges."""
    out = []
    for name, leaf in LEAVES.items():
        value, meta = get(c, name), leaf.field.metadata
        if meta["choices"] and value is not None and value not in meta["choices"]:
            out.append(f"--{name}={value!r} is unknown; choose one of {list(meta['choices'])}.")
            continue
        if leaf.field.type is float and not math.isfinite(value):
            out.append(f"--{name}={value} is not a finite number; give a finite value.")
            continue
        bound = meta["bound"]
        if bound == NON_NEGATIVE and value < 0:
            out.append(f"--{name}={value} is negative; it must be >= 0.")
        elif bound == POSITIVE and not value > 0:
            out.append(f"--{name}={value} must be > 0.")
        elif bound == POSITIVE_INT and value < 1:
            out.append(f"--{name}={value} must be a positive integer.")
    return out


def _file_problems(c):
    hints = {"fisher_file": "compute it with tftransfer fisher",
             "weights": "convert or save the source network's weights (docs/weights.md)"}
    out = []
    for name, hint in hints.items():
        path = get(c, name)
        if path and not os.path.isfile(os.path.expanduser(path)):
            out.append(f"--{name}={path} does not exist; {hint}.")
    return out


SMOOTHED_SCHEMES = ("l1_sp", "group_lasso_sp", "group_lasso_sp_fisher")


def without_effect(c):
    """``{flag: why}`` for the penalty options that change nothing in run ``c``: both
    strengths and ``--penalize_all_trainable`` under ``--scheme=none``; ``--alpha`` with
    ``--source=none`` (nothing is inherited: every layer is new and gets ``--beta``);
    ``--epsilon`` outside the smoothed schemes; ``--scheme`` and its options under a
    ``--method`` that replaces the penalty (:attr:`MethodConfig.REPLACES_SCHEME`).
    ``results.json`` lists them; a value other than the default (or 0 for a strength,
    ``none`` for the scheme) is refused (:func:`validate`)."""
    p, out, m = c.penalty, {}, c.method.method
    if m in ("delta", "delta_fm"):
        why = (f"--method={m} replaces the --scheme penalty (its strengths: --delta_alpha, "
               "--delta_beta)")
        return dict(scheme=why, alpha=why, beta=why, epsilon=why, penalize_all_trainable=why)
    if m in ("l2_sp_k", "group_lasso_sp_layer"):
        why = f"--method={m} is the penalty (strengths --alpha, --beta)"
        out = dict(scheme=why, penalize_all_trainable=why)
        if m == "l2_sp_k":
            out["epsilon"] = "--method=l2_sp_k does not smooth"
        return out
    if p.scheme == "none":
        why = "--scheme=none adds no penalty"
        out.update(alpha=why, beta=why, epsilon=why, penalize_all_trainable=why)
        return out
    if c.model.source == "none":
        out["alpha"] = ("--source=none inherits no weight: every layer is new and gets "
                        "--beta")
    if p.scheme not in SMOOTHED_SCHEMES:
        out["epsilon"] = f"only {list(SMOOTHED_SCHEMES)} smooth with it"
    return out


def _no_effect_problems(c):
    out = []
    for flag, why in without_effect(c).items():
        value, default = get(c, flag), default_value(LEAVES[flag].field)
        if value != default and not (flag in ("alpha", "beta") and value == 0) and not (
                flag == "scheme" and value == "none"):
            out.append(f"--{flag}={value} has no effect in this run ({why}); drop it.")
    return out


def _problems(c):
    """Every problem of ``c`` as a message that says how to fix it."""
    out = _generic_problems(c) + _file_problems(c) + c.method.problems(c)
    out += c.model.problems() + c.penalty.problems() + c.optim.problems(c.task.lr_schedule)
    if c.model.source == "none" and c.penalty.scheme not in ("none", "l2"):
        out.append(f"--scheme={c.penalty.scheme} pulls toward a starting point, but "
                   "--source=none has none; use --scheme=l2 or none, or a pretrained source.")
    else:
        out += _no_effect_problems(c)
    out += c.data.problems(c) + c.evaluation.problems(c) + c.runtime.problems()
    if c.penalty.penalty_path == "fused" and (c.method.method != NO_METHOD
                                              or c.task.task == "segmentation"):
        out.append("--penalty_path=fused is implemented for --method=none on the "
                   "classification task; drop it (the loss path computes the same update).")
    return out + c.task.problems(c)


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


def dataset_defaults(config, channels):
    """``config`` with the dataset-dependent defaults (None) of ``--mirror`` and
    ``--color_jitter`` set to what the run applies to its images of ``channels`` channels:
    mirror on (Li et al. 2018, Section 4.1) but for fashion_mnist (the demo's: off), colour
    jitter on RGB images only. So ``results.json`` records what was applied. Raises
    :class:`ConfigError` for ``--color_jitter`` asked on grey images."""
    d = config.data
    if d.color_jitter and channels != 3:
        hint = (" add --grey_to_rgb to repeat the grey channel, or" if d.dataset ==
                "fashion_mnist" else "")
        raise ConfigError(f"Invalid flags, nothing was run:\n  - --color_jitter changes "
                          f"colours, but --dataset={d.dataset} has {channels}-channel (grey) "
                          f"images:{hint} drop --color_jitter.")
    values = {}
    if d.mirror is None:
        values["mirror"] = d.dataset != "fashion_mnist"
    if d.color_jitter is None:  # segmentation (Li et al. 2018, Table 3): none
        values["color_jitter"] = channels == 3 and config.task.task == "classification"
    if d.classes and d.dataset in IN_MEMORY_DATASETS:
        values["classes"] = integer_classes(d.classes)
    return replace(config, **values) if values else config


def validate(config):
    """Returns ``config`` if it is valid; raises :class:`ConfigError` listing every problem."""
    problems = _problems(config)
    if problems:
        raise ConfigError("Invalid flags, nothing was run:\n  - " + "\n  - ".join(problems))
    return config
