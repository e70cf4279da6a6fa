"""The segmentation study's protocol: the source network, the two scene targets, the methods
and the driver configuration of every run (each a
:class:`experiments.cpu_study.protocol.StudyRun`: a ``RunConfig`` and its inputs).

- **Source**: the classification study's small ResNet pretrained on the ``far`` split's
  source classes (0 T-shirt, 1 trouser, 2 pullover, 3 dress, 4 coat; every training image),
  by the classification study's own :func:`experiments.cpu_study.protocol.source_config`
  (same network, same recipe, same output directory under the same root: a source trained
  by either study is reused by the other).
- **Targets** (:data:`TARGETS`): scenes of 2-4 items on a 64x64 canvas
  (:func:`tftransfer.data.scenes.make_scenes`, fixed seed) whose classes are the source
  classes (``seen``) or are not (``unseen``: 5 sandal, 6 shirt, 7 sneaker, 8 bag,
  9 ankle boot); masks: 0 background, 1 + c the c-th target class.
- **Methods**: ``none`` (plain fine-tuning), ``l2`` and ``l2_sp`` (alpha on the inherited
  backbone, beta = :data:`BETA` on the new segmentation head for both).
"""
import dataclasses
import os
from typing import Tuple

from experiments.cpu_study import protocol as cpu_protocol
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib

SOURCE_SPLIT = cpu_protocol.SPLITS["far"]
METHODS = ("none", "l2", "l2_sp")
TUNED = ("l2", "l2_sp")
BETA = cpu_protocol.BETA


@dataclasses.dataclass(frozen=True)
class SceneTarget:
    name: str
    classes: Tuple[int, ...]
    description: str


TARGETS = {
    "seen": SceneTarget("seen", SOURCE_SPLIT.source_classes,
                        "the source classes"),
    "unseen": SceneTarget("unseen", SOURCE_SPLIT.target_classes,
                          "classes the source never saw"),
}


@dataclasses.dataclass
class Settings:
    """Sizes of the study (the defaults fit about 15 minutes on 2 cores)."""
    targets: tuple = ("seen", "unseen")
    methods: tuple = METHODS
    pretrain_epochs: float = 2          # the classification study's source recipe
    scene_size: int = 64
    items: tuple = (2, 4)
    scene_seed: int = 0
    train_scenes: int = 300
    test_scenes: int = 200
    validation_fraction: float = 0.3    # of the training scenes, for the selection runs
    steps: int = 200
    batch_size: int = 16
    learning_rate: float = 0.01
    lr_schedule: str = "poly"
    head: str = "fcn"
    output_stride: int = 4
    alpha_grid: tuple = (1e-3, 1e-2, 0.1)
    seeds: int = 3
    example_scenes: int = 3             # test scenes per target in the figure
    workers: int = 2


QUICK = dict(pretrain_epochs=0.05, train_scenes=24, test_scenes=8, steps=4, batch_size=4,
             alpha_grid=(0.01,), seeds=2, example_scenes=2)


def is_tuned(method):
    return method in TUNED


def method_fields(method, alpha, beta=BETA):
    """RunConfig options (by flag name) that define ``method``."""
    if method == "none":
        return dict(scheme="none", alpha=0.0, beta=0.0)
    if method in TUNED:
        return dict(scheme=method, alpha=alpha, beta=beta)
    raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}.")


def source_run(root, settings, data_dir, num_train):
    """The classification study's source run (its :func:`source_config`, unchanged) of the
    ``far`` split under ``root``; ``num_train``: its training images (every image of the
    source classes)."""
    return cpu_protocol.source_config(SOURCE_SPLIT, root, settings.pretrain_epochs, data_dir,
                                      num_train)


def source_weights(run):
    return os.path.join(run.config.runtime.output_dir, "model.weights.h5")


def run_name(method, alpha, seed, beta=BETA):
    beta = 0.0 if method == "none" else beta
    return f"{method}_a{alpha:g}_b{beta:g}_s{seed}"


def target_run(target, method, alpha, seed, root, data_dir, weights, settings, select,
               save_weights=False):
    """The :class:`StudyRun` of one segmentation run through the driver (``--task=
    segmentation --dataset=scenes``): the source network ``weights`` with a new
    ``settings.head`` head fine-tuned on ``target``'s scenes.

    ``select``: the training scenes are composed from 70% of the target classes' training
    images and the run is evaluated on validation scenes composed from the other 30%
    (``results.json``: ``eval_split: validation``); otherwise the training scenes use every
    training image and the run is evaluated on the test scenes (from the test images).
    Scenes are drawn with ``--split_seed=settings.scene_seed``, the same for every method
    and seed; ``seed`` sets the head's initialisation and the batch order."""
    s = settings
    phase = "select" if select else "final"
    output_dir = os.path.join(root, target.name, f"t{s.steps}", phase,
                              run_name(method, alpha, seed))
    fields = dict(
        task="segmentation", seg_head=s.head, output_stride=s.output_stride,
        arch="small_resnet", source="custom", weights=weights,
        source_classes=len(SOURCE_SPLIT.source_classes), dataset="scenes",
        data_dir=data_dir, classes=list(target.classes), scenes_train=s.train_scenes,
        scenes_test=s.test_scenes, scenes_size=s.scene_size, scenes_items=list(s.items),
        split_seed=s.scene_seed, validation_fraction=s.validation_fraction if select else 0.0,
        crop_size=s.scene_size, mean="none", batch_size=s.batch_size, train_steps=s.steps,
        learning_rate=s.learning_rate, lr_schedule=s.lr_schedule, lr_boundaries=[], seed=seed,
        export=False, checkpoint_every=0, log_every=0, verbose=0, save_weights=save_weights,
        eval_batch_size=50, output_dir=output_dir)
    fields.update(method_fields(method, alpha))
    return cpu_protocol.StudyRun(config_lib.make(**fields), data_lib.DRIVER_INPUTS)
