"""The CPU study's protocol: source/target splits, methods and the driver configuration of
every run (each run is a :class:`StudyRun`: one :func:`tftransfer.training.run.run` of a
``RunConfig`` with the study's inputs, :class:`StudyInputs`, passed through the driver's
input hook).

Splits of Fashion-MNIST (classes: 0 T-shirt, 1 trouser, 2 pullover, 3 dress, 4 coat,
5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot), analogs of the paper's pairs:

- ``far``: source 0-4 (tops, trousers), target 5-9 (footwear, bags, shirt): Foods-101;
- ``near``: source {0, 2, 5, 7, 8}, target {1, 3, 4, 6, 9}: every target class has a kin in
  the source (trouser/dress vs T-shirt, coat/shirt vs pullover, boot vs sneaker):
  Caltech-256 from ImageNet;
- ``contained``: source all ten classes, target 5-9 with a fresh head: Stanford Dogs, whose
  breeds are ImageNet classes.

Methods (``alpha`` the strength on inherited weights, ``beta`` = 0.01 on the new head):
``scratch`` (random initialisation, no penalty), ``none`` (plain fine-tuning, no penalty),
``l2``, ``l2_sp``, ``l2_sp_fisher``, ``l1_sp``, ``group_lasso_sp``,
``group_lasso_sp_fisher`` (the schemes of :mod:`tftransfer.penalty`), ``linear_probe`` (every unit and batch norm frozen, only the
new head trains, L2(beta) on it), ``lr_mult`` (plain fine-tuning with learning rates x0.01
on the first half of the units and x0.1 on the rest, as in discriminative fine-tuning),
and ``freeze{k}_l2`` /
``freeze{k}_l2_sp`` (the first k units frozen, Figure 3). These are the study's default
(:data:`DEFAULT_METHODS`).

Every method of issue 19 runs too, by its registry name (the driver's ``--method``,
:data:`REGISTRY_METHODS`: ``delta_fm``, ``delta``, ``bss``, ``lwf``, ``co_tuning``,
``stochnorm``, ``mars_pgm``, ``frobenius_pgm``, ``spd``, ``l2_sp_k``,
``group_lasso_sp_layer``, ``lp_ft``, ``wise_ft``; docs/methods.md), at the registry's default
hyper-parameters: ``l2_sp_k`` and ``group_lasso_sp_layer`` are the penalty (``alpha`` chosen
on validation like the schemes', ``beta`` on the new head), ``delta`` / ``delta_fm`` replace
it with their own strengths, and the others are added to plain fine-tuning (``none``: no
``--scheme`` penalty), so each is read against ``none``.
"""
import dataclasses
import os
from typing import Tuple

from tftransfer import methods as methods_lib
from tftransfer.penalty import FISHER_SCHEMES
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib


@dataclasses.dataclass(frozen=True)
class Split:
    name: str
    source_classes: Tuple[int, ...]
    target_classes: Tuple[int, ...]
    analog: str


SPLITS = {
    "far": Split("far", (0, 1, 2, 3, 4), (5, 6, 7, 8, 9), "Foods-101 from ImageNet"),
    "near": Split("near", (0, 2, 5, 7, 8), (1, 3, 4, 6, 9), "Caltech-256 from ImageNet"),
    "contained": Split("contained", tuple(range(10)), (5, 6, 7, 8, 9),
                       "Stanford Dogs from ImageNet"),
}
# The ImageNet arm: the real EfficientNet-Lite0 on Fashion-MNIST 5-9 (a far target).
IMAGENET_ARM = Split("imagenet", (), (5, 6, 7, 8, 9), "Foods-101 from ImageNet (real ImageNet "
                     "weights)")

FISHER_METHODS = tuple(FISHER_SCHEMES)
# Issue 19's methods: the driver's --method values (tftransfer.methods.registry).
REGISTRY_METHODS = tuple(methods_lib.names())
# The registry methods whose strength is --alpha: chosen on validation like the schemes'.
TUNED_REGISTRY_METHODS = ("l2_sp_k", "group_lasso_sp_layer")
TUNED = ("l2", "l2_sp", "l2_sp_fisher", "l1_sp", "group_lasso_sp",
         "group_lasso_sp_fisher") + TUNED_REGISTRY_METHODS
UNTUNED = ("scratch", "none", "linear_probe", "lr_mult")
# The study's default methods (its time budget); --methods takes any of ALL_METHODS.
DEFAULT_METHODS = ("scratch", "none", "l2", "l2_sp", "l2_sp_fisher", "l1_sp", "group_lasso_sp",
                   "group_lasso_sp_fisher", "linear_probe", "lr_mult")
ALL_METHODS = DEFAULT_METHODS + tuple(m for m in REGISTRY_METHODS if m not in DEFAULT_METHODS)
BETA = 0.01          # the paper's strength on the new head
PAD = 2              # pixels of zero padding before the random 28x28 crop (28: no upscale)


def is_tuned(method):
    return base_method(method) in TUNED


def base_method(method):
    """``freeze2_l2_sp`` -> ``l2_sp``; other names unchanged."""
    if method.startswith("freeze"):
        return method.split("_", 1)[1]
    return method


def frozen_units(method):
    """``k`` of ``freeze{k}_...``, else 0."""
    if method.startswith("freeze"):
        return int(method[len("freeze"):].split("_", 1)[0])
    return 0


@dataclasses.dataclass(frozen=True)
class Arm:
    """The network side of the study: architecture, input size and source weights."""
    arch: str
    size: int                 # image side fed to the network
    rgb: bool
    units: Tuple[str, ...]    # the freezable units, input to output


SMALL = Arm("small_resnet", 28, False, ("stem", "stage1_block1", "stage2_block1",
                                        "stage3_block1"))


@dataclasses.dataclass(frozen=True)
class StudyInputs(data_lib.Inputs):
    """The study's Fashion-MNIST inputs, given to the driver through its input hook
    (``run(config, inputs=...)``): the training images zero-padded by ``pad`` pixels per
    side before the random crop back to the network's size, then mirrored w.p. 1/2
    (CIFAR-style augmentation); the grey channel repeated three times when ``rgb`` (for
    networks pretrained on RGB images); the first ``test_examples_per_class`` test images
    of each class in stored order (0 = all; ``--quick``); ``source_classes``: the source
    task's classes (for ``--source_eval_dataset=fashion_mnist`` and the source Fisher)."""
    pad: int = 0
    rgb: bool = False
    test_examples_per_class: int = 0
    source_classes: Tuple[int, ...] = ()

    def __post_init__(self):
        if self.pad < 0 or self.test_examples_per_class < 0:
            raise ValueError(f"{self}: pad and test_examples_per_class must be >= 0.")

    def identity(self):
        return {"inputs": "cpu_study.StudyInputs", **dataclasses.asdict(self),
                "source_classes": list(self.source_classes)}

    def input_shape(self, config):
        size = config.data.crop_size
        return (size, size, 3 if self.rgb else 1)

    def load(self, config):
        if config.data.dataset != "fashion_mnist":
            raise ValueError(f"StudyInputs reads Fashion-MNIST, not --dataset="
                             f"{config.data.dataset}.")
        return data_lib.in_memory_inputs(
            config, *data_lib.arrays(config), pad=self.pad, rgb=self.rgb,
            test_examples_per_class=self.test_examples_per_class)

    def source(self, config, num_classes):
        config = config_lib.replace(data_lib.source_config(config, num_classes),
                                    classes=list(self.source_classes))
        return self.load(config)


@dataclasses.dataclass
class StudyRun:
    """One run of the study: the driver's ``config`` and the study's ``inputs``."""
    config: config_lib.RunConfig
    inputs: StudyInputs


def source_config(split, root, epochs, data_dir, num_train, batch_size=128):
    """The :class:`StudyRun` pretraining the small ResNet on ``split``'s source classes
    (all their training images) for ``epochs`` (may be fractional) epochs, learning rate
    0.05 divided by 10 after 2/3 of the steps."""
    steps = max(1, round(epochs * -(-num_train // batch_size)))
    config = config_lib.make(
        arch="small_resnet", source="none", weights=None, dataset="fashion_mnist",
        data_dir=data_dir, classes=list(split.source_classes), resize=28, crop_size=28,
        mean="none", scheme="none", alpha=0.0, beta=0.0, batch_size=batch_size,
        train_steps=steps, lr_boundaries=[b for b in [steps * 2 // 3] if 0 < b < steps],
        learning_rate=0.05,
        save_weights=True, export=False, checkpoint_every=0, log_every=0, verbose=0,
        eval_batch_size=1000, output_dir=os.path.join(root, "sources", split.name))
    return StudyRun(config, StudyInputs(pad=PAD))


def lr_multiplier_entries(units):
    """x0.01 on the first half of ``units``, x0.1 on the rest (the head keeps x1)."""
    half = len(units) // 2
    return ([f"{u}=0.01" for u in units[:half]] + [f"{u}=0.1" for u in units[half:]])


@dataclasses.dataclass(frozen=True)
class Target:
    """Where and how long a target run trains."""
    split: Split
    arm: Arm
    examples_per_class: int
    steps: int
    weights: str = None          # source weights file (None: the arm's download)
    fisher_file: str = None      # source Fisher of the split (Fisher methods only)
    test_examples_per_class: int = 0   # final runs: test images per class (0: all)
    source_eval_examples: int = 1000   # source images of the Table 5 analog


def method_fields(method, alpha, beta, arm, fisher_file):
    """RunConfig options (by flag name) that define ``method``."""
    base, k = base_method(method), frozen_units(method)
    if base == "scratch":
        return dict(source="none", weights=None, scheme="none", alpha=0.0, beta=0.0)
    if base == "none":
        return dict(scheme="none", alpha=0.0, beta=0.0)
    if base == "linear_probe":
        return dict(scheme="l2", alpha=0.0, beta=beta, freeze_units=len(arm.units),
                    freeze_batch_norm=True)
    if base == "lr_mult":
        return dict(scheme="none", alpha=0.0, beta=0.0,
                    lr_multipliers=lr_multiplier_entries(arm.units))
    if base in TUNED_REGISTRY_METHODS:  # the method is the penalty: --alpha, --beta
        return dict(method=base, scheme="none", alpha=alpha, beta=beta, freeze_units=k)
    if base in REGISTRY_METHODS:  # its own strengths (registry defaults), no --scheme
        return dict(method=base, scheme="none", alpha=0.0, beta=0.0, freeze_units=k)
    fields = dict(scheme=base, alpha=alpha, beta=beta, freeze_units=k)
    if base in FISHER_SCHEMES:
        fields["fisher_file"] = fisher_file
    return fields


def target_config(target, method, alpha, seed, root, data_dir, select, beta=BETA,
                  validation_fraction=0.3, log_every=0, save_weights=False,
                  deviation_layers=(), source_eval=False, folds=0, fold=None, fields=None):
    """The :class:`StudyRun` of one target run.

    ``select``: train on part of the labelled images and evaluate on the held-out ones
    (model selection; ``results.json`` then says ``eval_split: validation``): with
    ``folds`` (k >= 2) fold ``fold`` of a k-fold split of each class's labelled images
    (the driver's ``--cv_folds/--cv_fold``), else the held-out ``validation_fraction``;
    otherwise train on all of them and evaluate on every test image of the target classes
    (the first ``target.test_examples_per_class`` of each class when set: ``--quick``).
    ``fields``: further RunConfig options by flag name (a method's own strengths)."""
    arm, steps = target.arm, target.steps
    phase = "select" if select else "final"
    name = f"{method}_a{alpha:g}_b{beta:g}_s{seed}"
    if fields:
        name += "".join(f"_{k}{v:g}" if isinstance(v, float) else f"_{k}{v}"
                        for k, v in sorted(fields.items()))
    if select and folds:
        name += f"_k{folds}f{fold}"
    output_dir = os.path.join(root, target.split.name, f"n{target.examples_per_class}",
                              f"t{steps}", phase, name)
    extra, fields = dict(fields or {}), dict(
        arch=arm.arch, source="custom" if target.weights and arm.arch == "small_resnet"
        else "imagenet", weights=target.weights,
        source_classes=len(target.split.source_classes) or None,
        dataset="fashion_mnist", data_dir=data_dir, classes=list(target.split.target_classes),
        examples_per_class=target.examples_per_class, split_seed=0,
        validation_fraction=validation_fraction if select and not folds else 0.0,
        cv_folds=folds if select else 0, cv_fold=fold if select and folds else None,
        resize=arm.size, crop_size=arm.size, mean="none", batch_size=32, train_steps=steps,
        lr_boundaries=[b for b in [steps * 2 // 3] if 0 < b < steps], learning_rate=0.01,
        seed=seed, export=False, checkpoint_every=0, log_every=log_every, verbose=0,
        save_weights=save_weights, eval_batch_size=500, output_dir=output_dir)
    fields.update(method_fields(method, alpha, beta, arm, target.fisher_file))
    fields.update(extra)
    if fields.get("freeze_units"):
        deviation_layers = ()  # frozen kernels are not trainable variables
    fields["deviation_layers"] = list(deviation_layers) if log_every else []
    if source_eval and fields["source"] == "custom":
        fields.update(source_eval_dataset="fashion_mnist",
                      source_eval_examples=target.source_eval_examples)
    inputs = StudyInputs(
        pad=max(1, round(PAD * arm.size / 28)), rgb=arm.rgb,
        test_examples_per_class=0 if select else target.test_examples_per_class,
        source_classes=tuple(target.split.source_classes))
    return StudyRun(config_lib.make(**fields), inputs)
