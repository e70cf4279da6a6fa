"""Flags: defined once from RunConfig with the paper's defaults, documented in the help,
and every invalid combination stops before any work with a message naming the fix."""
import dataclasses
import glob
import os
import tempfile

import tensorflow as tf
from absl import flags

from tests.train_testutil import ROOT, run_driver
from tftransfer.training import config as config_lib
from tftransfer.training import flags as flags_lib


def parse(*argv):
    values = flags.FlagValues()
    flags_lib.define_flags(values)
    values(["train", *argv])
    return values


class FlagsTest(tf.test.TestCase):

    def test_defaults_are_the_paper_recipe(self):
        config = flags_lib.config_from_flags(parse())
        self.assertEqual((config.batch_size, config.train_steps, config.lr_boundaries,
                          config.lr_decay_factor, config.momentum),
                         (64, 9000, [6000], 0.1, 0.9))
        self.assertEqual(config.eval_crops, 1)

    def test_flags_parse_into_config_and_help_lists_them(self):
        values = parse("--lr_boundaries=5000", "--alpha=0.01", "--model_widths=4,8",
                       "--arch=small_resnet", "--noexport")
        config = flags_lib.config_from_flags(values)
        self.assertEqual((config.lr_boundaries, config.alpha, config.model_widths,
                          config.export), ([5000], 0.01, [4, 8], False))
        help_text = values.get_help()
        for field in dataclasses.fields(config_lib.RunConfig):
            self.assertRegex(help_text, rf"--(\[no\])?{field.name}:")

    def test_unknown_names_are_rejected_at_parse_time(self):
        for flag in ("--arch=resnet7", "--scheme=l3_sp", "--dataset=cifar", "--strategy=x"):
            with self.assertRaisesRegex(flags.IllegalFlagValueError, "should be one of"):
                parse(flag)

    def test_invalid_combinations_name_the_problem(self):
        base = config_lib.RunConfig(dataset="synthetic", arch="small_resnet", resize=20,
                                    crop_size=16)
        cases = {
            "needs --fisher_file": dict(scheme="l2_sp_fisher"),
            "is negative": dict(alpha=-0.1),
            "--eval_crops=10 needs images larger": dict(eval_crops=10, resize=16),
            "exceeds --resize": dict(crop_size=32),
            "must be increasing steps": dict(lr_boundaries=[9500]),
            "does not exist": dict(weights="/nonexistent/x.weights.h5"),
            "pulls toward a starting point": dict(source="none", scheme="l2_sp"),
            "'first:K=M'": dict(lr_multipliers=["conv1"]),
            "needs --tpu": dict(strategy="tpu"),
            "is unknown": dict(arch="resnet7"),
        }
        for message, change in cases.items():
            with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(change)):
                config_lib.validate(dataclasses.replace(base, **change))
        config_lib.validate(base)

    def test_every_float_must_be_finite(self):
        """NaN passes every comparison (``nan < 0`` is False): each float field, found from
        the dataclass types, is rejected when NaN or infinite."""
        base = config_lib.RunConfig(dataset="synthetic", arch="small_resnet", resize=20,
                                    crop_size=16)
        self.assertContainsSubset({"alpha", "beta", "epsilon", "learning_rate", "momentum",
                                   "lr_decay_factor", "validation_fraction"},
                                  config_lib.FLOAT_FIELDS)
        for name in config_lib.FLOAT_FIELDS:
            for value in (float("nan"), float("inf"), -float("inf")):
                with self.assertRaisesRegex(config_lib.ConfigError,
                                            rf"--{name}={value} is not a finite number"):
                    config_lib.validate(dataclasses.replace(base, **{name: value}))
        with self.assertRaisesRegex(config_lib.ConfigError, "M finite and >= 0"):
            config_lib.validate(dataclasses.replace(base, lr_multipliers=["stem=nan"]))

    def test_ranges_of_the_optimiser(self):
        base = config_lib.RunConfig(dataset="synthetic", arch="small_resnet", resize=20,
                                    crop_size=16)
        cases = {r"--momentum=2 must be in \[0, 1\)": dict(momentum=2),
                 r"--momentum=1.0 must be in \[0, 1\)": dict(momentum=1.0),
                 "--learning_rate=0.0 must be > 0": dict(learning_rate=0.0),
                 "--lr_decay_factor=0.0 must be > 0": dict(lr_decay_factor=0.0),
                 "--source=custom needs --weights": dict(source="custom")}
        for message, change in cases.items():
            with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(change)):
                config_lib.validate(dataclasses.replace(base, **change))
        config_lib.validate(dataclasses.replace(base, momentum=0.0, learning_rate=1e-4))

    def test_class_lists(self):
        base = config_lib.RunConfig(dataset="fashion_mnist", arch="small_resnet", resize=28,
                                    crop_size=28)
        cases = {r"--classes=\[0, 0\] repeats \[0\]": dict(classes=[0, 0]),
                 r"--classes=\[0, 12\] is out of range": dict(classes=[0, 12]),
                 r"--classes=\[-1, 3\] is out of range": dict(classes=[-1, 3]),
                 r"--classes=\[3\] keeps a single class": dict(classes=[3]),
                 "--source_eval_classes=.* out of range": dict(
                     source_eval_dataset="fashion_mnist", source_eval_classes=[0, 10])}
        for message, change in cases.items():
            with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(change)):
                config_lib.validate(dataclasses.replace(base, **change))
        config_lib.validate(dataclasses.replace(base, classes=[5, 6]))

    def test_every_flagfile_parses_to_its_cell(self):
        cwd = os.getcwd()
        os.chdir(ROOT)  # flagfiles include flags/common.cfg by relative path
        try:
            outputs = set()
            for path in sorted(glob.glob("flags/table[25]_*.cfg")):
                config = flags_lib.config_from_flags(parse(f"--flagfile={path}"),
                                                     validate=False)
                name = os.path.basename(path)[len("table2_"):-len(".cfg")]
                starred = name.endswith("_star")
                self.assertEqual(config.eval_crops, 10 if starred else 1, path)
                self.assertEqual(config.keep_aspect, starred, path)
                self.assertTrue(name.startswith(config.dataset + "_"), path)
                scheme = name[len(config.dataset) + 1:].removesuffix("_star")
                self.assertEqual(config.scheme, scheme, path)
                self.assertEqual((config.train_steps, config.lr_boundaries, config.batch_size),
                                 (9000, [6000], 64), path)
                self.assertEqual(config.source, "places365" if config.dataset ==
                                 "mit_indoor67" else "imagenet", path)
                self.assertEqual(bool(config.source_eval_dataset), path.startswith(
                    "flags/table5"), path)
                outputs.add(config.output_dir)
            self.assertLen(outputs, 30 + 15)
            demo = flags_lib.config_from_flags(parse(
                "--flagfile=flags/demo_target.cfg", "--flagfile=flags/demo_scratch.cfg"),
                validate=False)
            self.assertEqual((demo.source, demo.weights, demo.classes), ("none", None,
                                                                         [5, 6, 7, 8, 9]))
        finally:
            os.chdir(cwd)

    def test_driver_stops_before_any_work(self):
        output_dir = os.path.join(tempfile.mkdtemp(), "never")
        result = run_driver("--dataset=synthetic", "--scheme=l2_sp_fisher", "--alpha=-1",
                            "--eval_crops=10", "--resize=224", "--learning_rate=nan",
                            "--momentum=2", f"--output_dir={output_dir}")
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn("Invalid flags, nothing was run", result.stderr)
        self.assertIn("--scheme=l2_sp_fisher needs --fisher_file", result.stderr)
        self.assertIn("--alpha=-1.0 is negative", result.stderr)
        self.assertIn("--eval_crops=10 needs images larger than the crop", result.stderr)
        self.assertIn("--learning_rate=nan is not a finite number", result.stderr)
        self.assertIn("--momentum=2.0 must be in [0, 1)", result.stderr)
        self.assertFalse(os.path.exists(output_dir))


if __name__ == "__main__":
    tf.test.main()
