"""Flags: defined once from RunConfig's options with the paper's defaults, documented in the
help by section, removed flags answered with their replacement, the effect tags behind the
identity and the model cache, and every invalid combination stops before any work with a
message naming the fix (the command line's exit status 2 and its message:
tests/test_cli.py, in its one process of the driver's command lines)."""
import glob
import importlib.util
import os
import tempfile

import tensorflow as tf
from absl import flags

from tests.train_testutil import ROOT, run_driver, tiny_flags
from tftransfer.training import config as config_lib
from tftransfer.training import flags as flags_lib
from tftransfer.training import identity
from tftransfer.training.model import ModelCache


def parse(*argv):
    values = flags.FlagValues()
    flags_lib.define_flags(values)
    values(["train", *argv])
    return values


class FlagsTest(tf.test.TestCase):

    def test_defaults_are_the_paper_recipe(self):
        config = flags_lib.config_from_flags(parse())
        o = config.optim
        self.assertEqual((o.batch_size, o.train_steps, o.lr_boundaries, o.lr_decay_factor,
                          o.momentum), (64, 9000, [6000], 0.1, 0.9))
        self.assertEqual((config.model.arch, config.model.source), ("resnet101", "imagenet"))
        self.assertEqual((config.penalty.scheme, config.penalty.alpha, config.penalty.beta),
                         ("l2_sp", 0.1, 0.01))
        self.assertEqual(config.evaluation.eval_crops, 1)

    def test_flags_parse_into_config_and_help_lists_them(self):
        values = parse("--lr_boundaries=5000", "--alpha=0.01", "--model_widths=4,8",
                       "--arch=small_resnet", "--noexport")
        config = flags_lib.config_from_flags(values)
        self.assertEqual((config.optim.lr_boundaries, config.penalty.alpha,
                          config.model.model_widths, config.runtime.export),
                         ([5000], 0.01, [4, 8], False))
        help_text = values.get_help()
        for name in config_lib.LEAVES:
            self.assertRegex(help_text, rf"--(\[no\])?{name}:")
        for section in ("model", "data", "penalty", "optim", "evaluation", "runtime"):
            self.assertIn(f"tftransfer.training.config.{section}:", help_text)
        self.assertEqual(config_lib.LEAVES["dogs_test_set"].path,
                         ("data", "stanford_dogs120", "test_set"))

    def test_removed_flags_name_their_replacement(self):
        for flag in ("--test_examples_per_class=5", "--source_eval_classes=0,1"):
            name = flag[2:].split("=")[0]
            with self.assertRaisesRegex(config_lib.ConfigError,
                                        rf"--{name} was removed from the driver: .*input hook "
                                        r"of tftransfer.training.run.run"):
                flags_lib.config_from_flags(parse(flag), validate=False)
        self.assertNotIn("test_examples_per_class", config_lib.LEAVES)

    def test_effects_decide_identity_and_model_cache(self):
        """Every option declares its effect; the identity holds the ``model`` and
        ``result`` ones, the cache key the ``model`` ones, and nothing is listed by hand."""
        self.assertEqual({leaf.effect for leaf in config_lib.LEAVES.values()},
                         set(config_lib.EFFECTS))
        base = config_lib.make(dataset="synthetic", arch="small_resnet", resize=20,
                               crop_size=16)
        self.assertCountEqual(identity.of(base), config_lib.names_with(config_lib.MODEL,
                                                                       config_lib.RESULT))
        for name, leaf in config_lib.LEAVES.items():
            default = config_lib.get(base, name)
            if isinstance(default, bool):
                other = not default
            elif default is None and leaf.field.metadata["kind"] in (bool, int):
                other = 1
            elif isinstance(default, (int, float)):
                other = default + 1
            elif isinstance(default, list):
                other = default + ["1"]
            else:
                other = "changed"
            changed = config_lib.replace(base, **{name: other})
            self.assertEqual(identity.digest(changed) != identity.digest(base),
                             leaf.effect != config_lib.OUTPUT, name)
            self.assertEqual(ModelCache.config_key(changed) != ModelCache.config_key(base),
                             leaf.effect == config_lib.MODEL, name)
        self.assertIn("seed", config_lib.names_with(config_lib.RESULT))
        self.assertIn("alpha", config_lib.names_with(config_lib.MODEL))
        with self.assertRaisesRegex(TypeError, r"\['grey'\] are not options"):
            config_lib.replace(base, grey=2)

    def test_unknown_names_are_rejected_at_parse_time(self):
        for flag in ("--arch=resnet7", "--scheme=l3_sp", "--dataset=cifar", "--strategy=x"):
            with self.assertRaisesRegex(flags.IllegalFlagValueError, "should be one of"):
                parse(flag)

    def test_invalid_combinations_name_the_problem(self):
        base = config_lib.make(dataset="synthetic", arch="small_resnet", resize=20,
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
            "--grey_to_rgb applies to --dataset=fashion_mnist only": dict(grey_to_rgb=True),
            "--dogs_test_set applies to --dataset=stanford_dogs120 only": dict(
                dogs_test_set="official"),
            "--cv_fold=1 without --cv_folds": dict(cv_fold=1),
        }
        for message, change in cases.items():
            with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(change)):
                config_lib.validate(config_lib.replace(base, **change))
        config_lib.validate(base)

    def test_every_float_must_be_finite(self):
        """NaN passes every comparison (``nan < 0`` is False): each float field, found from
        the dataclass types, is rejected when NaN or infinite."""
        base = config_lib.make(dataset="synthetic", arch="small_resnet", resize=20,
                               crop_size=16)
        self.assertContainsSubset({"alpha", "beta", "epsilon", "learning_rate", "momentum",
                                   "lr_decay_factor", "validation_fraction"},
                                  config_lib.FLOAT_FIELDS)
        for name in config_lib.FLOAT_FIELDS:
            for value in (float("nan"), float("inf"), -float("inf")):
                with self.assertRaisesRegex(config_lib.ConfigError,
                                            rf"--{name}={value} is not a finite number"):
                    config_lib.validate(config_lib.replace(base, **{name: value}))
        with self.assertRaisesRegex(config_lib.ConfigError, "M finite and >= 0"):
            config_lib.validate(config_lib.replace(base, lr_multipliers=["stem=nan"]))

    def test_ranges_of_the_optimiser(self):
        base = config_lib.make(dataset="synthetic", arch="small_resnet", resize=20,
                               crop_size=16)
        cases = {r"--momentum=2 must be in \[0, 1\)": dict(momentum=2),
                 r"--momentum=1.0 must be in \[0, 1\)": dict(momentum=1.0),
                 "--learning_rate=0.0 must be > 0": dict(learning_rate=0.0),
                 "--lr_decay_factor=0.0 must be > 0": dict(lr_decay_factor=0.0),
                 "--source=custom needs --weights": dict(source="custom")}
        for message, change in cases.items():
            with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(change)):
                config_lib.validate(config_lib.replace(base, **change))
        config_lib.validate(config_lib.replace(base, momentum=0.0, learning_rate=1e-4))

    def test_class_lists(self):
        base = config_lib.make(dataset="fashion_mnist", arch="small_resnet", resize=28,
                               crop_size=28)
        cases = {r"--classes=\[0, 0\] repeats \[0\]": dict(classes=[0, 0]),
                 r"--classes=\[0, 12\] is out of range": dict(classes=[0, 12]),
                 r"--classes=\[-1, 3\] is out of range": dict(classes=[-1, 3]),
                 r"--classes=\[3\] keeps a single class": dict(classes=[3]),
                 "--synthetic_classes applies to --dataset=synthetic only": dict(
                     synthetic_classes=3)}
        for message, change in cases.items():
            with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(change)):
                config_lib.validate(config_lib.replace(base, **change))
        config_lib.validate(config_lib.replace(base, classes=[5, 6]))

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
                dataset, o = config.data.dataset, config.optim
                self.assertEqual(config.evaluation.eval_crops, 10 if starred else 1, path)
                self.assertEqual(config.data.keep_aspect, starred, path)
                self.assertTrue(name.startswith(dataset + "_"), path)
                scheme = name[len(dataset) + 1:].removesuffix("_star")
                self.assertEqual(config.penalty.scheme, scheme, path)
                self.assertEqual((o.train_steps, o.lr_boundaries, o.batch_size),
                                 (9000, [6000], 64), path)
                self.assertEqual(config.model.source, "places365" if dataset ==
                                 "mit_indoor67" else "imagenet", path)
                self.assertEqual(bool(config.evaluation.source_eval_dataset), path.startswith(
                    "flags/table5"), path)
                outputs.add(config.runtime.output_dir)
            self.assertLen(outputs, 30 + 15)
            demo = flags_lib.config_from_flags(parse(
                "--flagfile=flags/demo_target.cfg", "--flagfile=flags/demo_scratch.cfg"),
                validate=False)
            self.assertEqual((demo.model.source, demo.model.weights,
                              demo.data.classes), ("none", None, ["5", "6", "7", "8", "9"]))
        finally:
            os.chdir(cwd)


class BackendTest(tf.test.TestCase):

    def test_other_backends_are_refused_in_one_message(self):
        if importlib.util.find_spec("jax") is None:
            self.skipTest("jax is not installed (pip install .[jax])")
        out = tempfile.mkdtemp()
        result = run_driver(*tiny_flags(os.path.join(out, "run")), KERAS_BACKEND="jax")
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn("The driver runs on Keras' TensorFlow backend only", result.stderr)
        self.assertIn("KERAS_BACKEND=jax", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "run")))


if __name__ == "__main__":
    tf.test.main()
