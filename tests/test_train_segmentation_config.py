"""The task section of the run configuration: classification digests of before kept,
identities stored before the segmentation options still match, the options that do not
apply to a task refused with the reason, and the Table 4 / SBD flagfiles parsed with the
driver's flags to the settings of Li et al. 2018, Table 3 (no training)."""
import glob
import hashlib
import json
import os

import tensorflow as tf
from absl import flags

from tests.train_testutil import ROOT, TINY
from tftransfer.training import config as config_lib
from tftransfer.training import flags as flags_lib
from tftransfer.training import identity

# Digests computed on the checkout before the segmentation task existed (commit 0c62384).
DIGESTS_BEFORE = {"default": "ed5081a3d82b", "tiny": "2ad6ab50d12c",
                  "table2_caltech256_30_l2_sp": "1eeda5d837a5", "demo_l2_sp": "eb5412a13e19"}
SCENES = dict(task="segmentation", dataset="scenes", arch="small_resnet",
              scenes_source="synthetic", scenes_size=32, scenes_scale=[0.5, 1.0],
              crop_size=32)


def parse(*argv):
    values = flags.FlagValues()
    flags_lib.define_flags(values)
    values(["train", *argv])
    return values


def from_flagfiles(*paths, validate=False):
    cwd = os.getcwd()
    os.chdir(ROOT)  # flagfiles include others by relative path
    try:
        return flags_lib.config_from_flags(parse(*[f"--flagfile={p}" for p in paths]),
                                           validate=validate)
    finally:
        os.chdir(cwd)


class ClassificationIdentityTest(tf.test.TestCase):

    def test_digests_of_before_are_unchanged(self):
        configs = {"default": config_lib.make(),
                   "tiny": config_lib.make(**dict(TINY, output_dir="x")),
                   "table2_caltech256_30_l2_sp": from_flagfiles(
                       "flags/table2_caltech256_30_l2_sp.cfg"),
                   "demo_l2_sp": from_flagfiles("flags/demo_target.cfg",
                                                "flags/demo_l2_sp.cfg")}
        for name, config in configs.items():
            self.assertEqual(identity.digest(config), DIGESTS_BEFORE[name], name)
            # The digest is the hash of the identity without the later options: written
            # here from the definition, not through identity.digested.
            earlier = {k: v for k, v in identity.of(config).items()
                       if not config_lib.LEAVES[k].field.metadata["since"]}
            text = json.dumps(earlier, sort_keys=True)
            self.assertEqual(identity.digest(config),
                             hashlib.sha256(text.encode()).hexdigest()[:12], name)

    def test_every_new_option_is_later_and_changes_the_digest_when_set(self):
        self.assertContainsSubset(["task", "seg_head", "lr_schedule", "poly_power",
                                   "scenes_size", "eval_flip"], config_lib.LATER_OPTIONS)
        base = config_lib.make(**SCENES)
        for name, value in (("seg_head", "pspnet"), ("scenes_size", 48),
                            ("eval_flip", True), ("lr_schedule", "poly")):
            self.assertNotEqual(identity.digest(config_lib.replace(base, **{name: value})),
                                identity.digest(base), name)
        self.assertNotEqual(identity.digest(base),
                            identity.digest(config_lib.replace(base, task="classification")))

    def test_identity_stored_before_the_options_existed_still_matches(self):
        config = config_lib.make(**dict(TINY, output_dir="x"))
        stored = {k: v for k, v in identity.of(config).items()
                  if k not in config_lib.LATER_OPTIONS}  # as written before
        identity.check(config, stored, "an unfinished run", "here")
        changed = config_lib.replace(config, lr_schedule="poly")
        with self.assertRaisesRegex(identity.RunMismatchError,
                                    r"--lr_schedule: 'piecewise' there, 'poly' now"):
            identity.check(changed, stored, "an unfinished run", "here")


class ChoicesTest(tf.test.TestCase):

    def test_choices_are_those_of_the_models(self):
        from tftransfer.models import segmentation

        self.assertEqual(config_lib.SEG_HEADS, segmentation.HEADS)
        self.assertEqual(config_lib.BATCH_NORM_MODES, tuple(segmentation.BATCH_NORM_MODES))
        self.assertEqual(config_lib.SEG_ARCHS, segmentation.ARCHS)

    def test_choices_are_those_of_the_data(self):
        from tftransfer.data import segmentation_pipeline

        self.assertEqual(config_lib.SEGMENTATION_PIPELINE_DATASETS,
                         segmentation_pipeline.SEGMENTATION_DATASETS)


class RefusalTest(tf.test.TestCase):

    def assertRefused(self, config, message):
        with self.assertRaisesRegex(config_lib.ConfigError, message):
            config_lib.validate(config)

    def test_scenes_configuration_is_valid(self):
        config_lib.validate(config_lib.make(**SCENES))

    def test_segmentation_options_are_refused_for_classification(self):
        base = config_lib.make(dataset="synthetic", arch="small_resnet", resize=20,
                               crop_size=16)
        for name, value in (("seg_head", "pspnet"), ("output_stride", 4),
                            ("batch_norm_mode", "frozen"), ("synchronized_bn", True),
                            ("train_scale_min", 0.5), ("seg_eval", "sliding"),
                            ("eval_crop", 8), ("eval_scales", [1.0]), ("eval_flip", True)):
            self.assertRefused(config_lib.replace(base, **{name: value}),
                               rf"--{name} applies to --task=segmentation only")
        self.assertRefused(config_lib.replace(base, dataset="scenes", resize=256),
                           "is a segmentation dataset .*add --task=segmentation")
        self.assertRefused(config_lib.replace(base, scenes_size=48),
                           "--scenes_size applies to --dataset=scenes only")

    def test_classification_options_are_refused_for_segmentation(self):
        base = config_lib.make(**SCENES)
        cases = {
            "--eval_crops is the classification test": dict(eval_crops=10),
            "--source_eval_dataset puts a source classifier back": dict(
                source_eval_dataset="synthetic", source="imagenet"),
            "segmentation sets --batch_norm_mode=frozen": dict(freeze_batch_norm=True),
            "--freeze_units is not implemented for segmentation": dict(freeze_units=2),
            "--pad is classification's": dict(pad=4),
            "--resize is classification's": dict(resize=64),
            "--dataset=synthetic is a classification dataset": dict(dataset="synthetic"),
            "--arch=efficientnet_lite0: --task=segmentation builds a dilated ResNet": dict(
                arch="efficientnet_lite0"),
            "--output_stride=8 is not one of \\[1, 2, 4\\]": dict(output_stride=8),
            "--aux_loss_weight applies to --seg_head=pspnet": dict(aux_loss_weight=0.4),
            "go together": dict(train_scale_min=0.5),
            "need 0 < min <= max": dict(train_scale_min=2.0, train_scale_max=0.5),
            "--eval_crop applies to sliding windows": dict(eval_crop=16),
            "--eval_stride=20 must be in 1..--eval_crop=16": dict(
                seg_eval="sliding", eval_crop=16, eval_stride=20),
            "--eval_scales applies to --seg_eval=multi_scale": dict(eval_scales=[1.0]),
            "--eval_flip applies to --seg_eval=multi_scale": dict(eval_flip=True),
            "--crop_size=48 exceeds --scenes_size=32": dict(crop_size=48),
            "larger than --scenes_size=32": dict(scenes_scale=[1.0, 1.5]),
            "--lr_boundaries and --lr_decay_factor apply to --lr_schedule=piecewise": dict(
                lr_schedule="poly", lr_boundaries=[10]),
            "--poly_power applies to --lr_schedule=poly only": dict(poly_power=1.0),
            "--scenes_items=\\[3, 2\\] must be min,max": dict(scenes_items=[3, 2]),
        }
        for message, change in cases.items():
            self.assertRefused(config_lib.replace(base, **change), message)
        pipeline = config_lib.replace(base, dataset="cityscapes", arch="resnet50",
                                      output_stride=None, crop_size=64, data_dir="/d",
                                      scenes_source="fashion_mnist", scenes_size=64,
                                      scenes_scale=[0.75, 1.5])
        self.assertRefused(pipeline, "--mean=dataset is not computed for --dataset=cityscapes")
        pipeline = config_lib.replace(pipeline, mean="imagenet")
        config_lib.validate(pipeline)
        self.assertRefused(config_lib.replace(pipeline, validation_fraction=0.2),
                           "--validation_fraction does not apply to --dataset=cityscapes")
        self.assertRefused(config_lib.replace(pipeline, dataset="segmentation_folders"),
                           "--dataset=segmentation_folders needs --manual_dir")

    def test_poly_schedule_ignores_the_default_boundaries(self):
        config = config_lib.replace(config_lib.make(**SCENES), lr_schedule="poly",
                                    train_steps=30)
        config_lib.validate(config)  # the default --lr_boundaries=6000 is not read
        classification = config_lib.make(**dict(TINY, lr_schedule="poly", lr_boundaries=[]))
        config_lib.validate(classification)


class FlagfileTest(tf.test.TestCase):
    """Each flagfile of Table 4 and the SBD row, parsed by the driver's flags."""

    EXPECTED = {  # head, batch, crop, bn mode, schedule, random scale, test
        "fcn": ("fcn", 2, 800, "frozen", "piecewise", None, "whole"),
        "resnet": ("resnet", 2, 800, "frozen_stats", "piecewise", None, "whole"),
        "deeplab": ("deeplab", 2, 800, "frozen_stats", "poly", (0.5, 2.0), "whole"),
        "deeplab_coco": ("deeplab", 2, 800, "frozen_stats", "poly", (0.5, 2.0), "whole"),
        "pspnet": ("pspnet", 8, 836, "train", "poly", (0.5, 2.0), "multi_scale"),
        "pspnet_extra": ("pspnet", 8, 836, "train", "poly", (0.5, 2.0), "multi_scale"),
    }

    def settings(self, config):
        t = config.task
        scale = None if t.train_scale_min is None else (t.train_scale_min, t.train_scale_max)
        return (t.seg_head, config.optim.batch_size, config.data.crop_size,
                t.batch_norm_mode, t.lr_schedule, scale, t.seg_eval)

    def test_table4_and_sbd_flagfiles(self):
        paths = sorted(glob.glob(os.path.join(ROOT, "flags", "table4_*_l2*.cfg")))
        self.assertLen(paths, 12)
        outputs = set()
        for path in paths:
            name = os.path.basename(path)[len("table4_"):-len(".cfg")]
            network, scheme = (name[:-len("_l2_sp")], "l2_sp") if name.endswith("_l2_sp") \
                else (name[:-len("_l2")], "l2")
            config = from_flagfiles(os.path.relpath(path, ROOT))
            self.assertEqual(self.settings(config), self.EXPECTED[network], path)
            self.assertEqual((config.task.task, config.penalty.scheme, config.model.arch,
                              config.penalty.alpha, config.penalty.beta),
                             ("segmentation", scheme, "resnet101", 1e-4, 1e-3), path)
            if config.task.lr_schedule == "piecewise":
                self.assertEqual(config.optim.lr_boundaries, [], path)  # fixed lr
            outputs.add(config.runtime.output_dir)
            if network == "deeplab_coco":  # names the missing input and stops
                with self.assertRaisesRegex(config_lib.ConfigError,
                                            r"--weights=weights/resnet101_imagenet_coco_"
                                            r"backbone.weights.h5 does not exist"):
                    from_flagfiles(os.path.relpath(path, ROOT), validate=True)
                continue
            from_flagfiles(os.path.relpath(path, ROOT), validate=True)
            if network == "pspnet":
                t = config.task
                self.assertEqual((config.runtime.strategy, t.synchronized_bn,
                                  t.aux_loss_weight, t.window(config), t.scales(),
                                  t.eval_flip),
                                 ("mirrored", True, 0.4, 836,
                                  [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], True))
            self.assertEqual(config.data.dataset, "segmentation_folders" if network ==
                             "pspnet_extra" else "cityscapes", path)
        for scheme in ("l2", "l2_sp"):
            config = from_flagfiles(f"flags/sbd_pspnet_{scheme}.cfg", validate=True)
            self.assertEqual(self.settings(config), ("pspnet", 16, 480, "train", "poly",
                                                     (0.5, 2.0), "multi_scale"))
            self.assertEqual((config.data.dataset, config.task.window(config),
                              config.penalty.scheme), ("sbd", 480, scheme))
            outputs.add(config.runtime.output_dir)
        self.assertLen(outputs, 14)


if __name__ == "__main__":
    tf.test.main()
