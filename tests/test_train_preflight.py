"""Problems knowable from the flags and the files they name stop a run before the strategy,
the data and the model exist, in one line each: Fisher values and keys, weights of other
shapes (never Keras' dump of the arrays), unknown learning-rate groups, frozen units beyond
the network, deviation paths, batch sizes the replicas cannot split."""
import os
import subprocess
import sys
import tempfile
import textwrap
import warnings
from unittest import mock

import h5py
import numpy as np
import tensorflow as tf

from tests.train_testutil import ROOT, environment, tiny_config
from tftransfer import fisher
from tftransfer.models.build import build
from tftransfer.models.small_resnet import small_resnet
from tftransfer.training import config as config_lib
from tftransfer.training import preflight
from tftransfer.training.run import run

WIDTHS = (4, 8, 16)
OTHER_WIDTHS = [8, 16, 32]
SOURCE_CLASSES = 4
SHAPE = (16, 16, 3)


def _source_network(widths=WIDTHS):
    return small_resnet(SHAPE, SOURCE_CLASSES, widths=widths)


def _strip_layer_names(path):
    """The weights file at ``path`` without the layer names Keras 3 records, as written by
    older Keras versions (the shape check cannot match its layers)."""
    with h5py.File(path, "r+") as f:
        for group in f["layers"].values():
            if "vars" in group:
                del group["vars"].attrs["name"]


class FisherLoadTest(tf.test.TestCase):

    def _file(self, **entries):
        path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "fisher.npz")
        fisher.save(path, {k: np.asarray(v, np.float32) for k, v in entries.items()})
        return path

    def test_negative_nan_and_infinite_values_are_rejected(self):
        for bad in (-0.049, np.nan, np.inf):
            path = self._file(**{"a/kernel": [0.5, 0.0], "b/kernel": [1.0, bad],
                                 "c/kernel": [bad]})
            with self.assertRaises(ValueError) as caught:
                fisher.load(path)
            message = str(caught.exception)
            self.assertIn(path, message)
            self.assertIn("b/kernel", message)  # the first offending variable
            self.assertNotIn("c/kernel", message)
            self.assertIn("tftransfer fisher", message)

    def test_finite_non_negative_values_load(self):
        path = self._file(**{"a/kernel": [0.0, 2.5]})
        self.assertAllEqual(fisher.load(path)["a/kernel"], [0.0, 2.5])


class PreflightTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp()
        cls.weights = os.path.join(cls.dir, "source.weights.h5")
        network = _source_network()
        network.save_weights(cls.weights)
        cls.fisher = os.path.join(cls.dir, "fisher.npz")
        fisher.save(cls.fisher, {v.path: np.ones(v.shape, np.float32)
                                 for v in network.trainable_variables})
        cls.other_fisher = os.path.join(cls.dir, "fisher_other_arch.npz")
        fisher.save(cls.other_fisher, {v.path: np.ones(v.shape, np.float32)
                                       for v in _source_network((4, 8)).trainable_variables})

    def config(self, **overrides):
        values = dict(model_widths=list(WIDTHS), source="custom", weights=self.weights,
                      source_classes=SOURCE_CLASSES)
        values.update(overrides)
        return config_lib.validate(tiny_config(None, **values))

    def assertProblem(self, config, *fragments):
        """``check(config)`` raises one problem, on one line, with every fragment."""
        with self.assertRaises(config_lib.ConfigError) as caught:
            preflight.check(config)
        lines = str(caught.exception).splitlines()
        self.assertLen(lines, 2, lines)  # the header and one problem
        for fragment in fragments:
            self.assertIn(fragment, lines[1])
        return lines[1]

    def test_matching_files_and_names_pass(self):
        preflight.check(self.config(
            scheme="l2_sp_fisher", fisher_file=self.fisher, freeze_units=2,
            lr_multipliers=["first:2=0.1", "predictions=1"],
            deviation_layers=["stage3_block1_2_conv/kernel"]))
        preflight.check(self.config(scheme="l2_sp_fisher", fisher_file=self.fisher,
                                    penalize_all_trainable=True))

    def test_fisher_for_another_architecture(self):
        line = self.assertProblem(
            self.config(scheme="l2_sp_fisher", fisher_file=self.other_fisher),
            f"--fisher_file={self.other_fisher}", "3 of the 9 penalised variables have no "
            "entry", "stage3_block1_1_conv/kernel", "tftransfer fisher")
        self.assertIn("--model_widths=4,8,16", line)

    def test_fisher_of_other_widths_and_of_kernels_only(self):
        wide = os.path.join(self.dir, "wide.weights.h5")
        _source_network(OTHER_WIDTHS).save_weights(wide)
        self.assertProblem(self.config(scheme="l2_sp_fisher", fisher_file=self.fisher,
                                       model_widths=OTHER_WIDTHS, weights=wide),
                           "entries have another shape", "(3, 3, 3, 4) in the file, "
                           "(3, 3, 3, 8) in the model")
        kernels = os.path.join(self.dir, "kernels.npz")
        fisher.save(kernels, {k: v for k, v in fisher.load(self.fisher).items()
                              if k.endswith("kernel")})
        self.assertProblem(self.config(scheme="l2_sp_fisher", fisher_file=kernels,
                                       penalize_all_trainable=True), "have no entry")

    def test_fisher_values_are_checked_first(self):
        path = os.path.join(self.dir, "negative.npz")
        fisher.save(path, {"stem_conv/kernel": -np.ones((3, 3, 3, 4), np.float32)})
        self.assertProblem(self.config(scheme="l2_sp_fisher", fisher_file=path),
                           "--fisher_file: ", path, "stem_conv/kernel",
                           "tftransfer fisher")

    def test_weights_of_other_widths_one_line(self):
        line = self.assertProblem(self.config(model_widths=OTHER_WIDTHS),
                                  f"--weights={self.weights}", "layer 'stem_conv'",
                                  "(3, 3, 3, 4) in the file", "(3, 3, 3, 8) in the model")
        self.assertLess(len(line), 600)
        self.assertProblem(self.config(source_classes=5), "layer 'predictions'",
                           "(16, 4) in the file", "(16, 5) in the model")

    def test_weights_of_other_widths_one_line_at_the_load_site(self):
        """``build`` itself names the first layer and both shapes; for a file whose layers
        cannot be matched before loading, Keras' message is kept without its arrays."""
        unnamed = os.path.join(self.dir, "unnamed.weights.h5")
        _source_network().save_weights(unnamed)
        _strip_layer_names(unnamed)
        for path, fragments in ((self.weights, ["layer 'stem_conv'", "(3, 3, 3, 4) in the "
                                                "file", "(3, 3, 3, 8) in the model"]),
                                (unnamed, ["stem_conv/kernel", "(3, 3, 3, 4)",
                                           "(3, 3, 3, 8)"])):
            with self.assertRaises(ValueError) as caught, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # Keras' per-layer warnings
                build("small_resnet", 3, "custom", weights=path, input_shape=SHAPE,
                      source_classes=SOURCE_CLASSES,
                      arch_kwargs={"widths": tuple(OTHER_WIDTHS)})
            message = str(caught.exception)
            self.assertLess(len(message.splitlines()), 5, message[:3000])
            self.assertNotIn("value=", message)
            for fragment in fragments:
                self.assertIn(fragment, message)

    def test_unknown_lr_multiplier_unit(self):
        self.assertProblem(self.config(lr_multipliers=["stage9_block1=0.1"]),
                           "'stage9_block1' is neither a unit nor a layer",
                           "['stem', 'stage1_block1', 'stage2_block1', 'stage3_block1']")
        self.assertProblem(self.config(lr_multipliers=["first:9=0.1"]),
                           "takes 9 units but the model has only 4")

    def test_freeze_units_and_deviation_layers(self):
        self.assertProblem(self.config(freeze_units=5), "--freeze_units=5 exceeds the 4 "
                           "units")
        self.assertProblem(self.config(deviation_layers=["conv1/kernel"]),
                           "['conv1/kernel'] are not trainable variable paths")

    def test_batch_not_divisible_by_replicas(self):
        if tf.config.list_physical_devices("GPU"):
            self.skipTest("mirrored uses the GPUs here, not --cpu_logical_devices")
        config = self.config(strategy="mirrored", cpu_logical_devices=3)
        self.assertEqual(preflight.expected_replicas(config), 3)
        self.assertProblem(config, "--batch_size=8", "divisible by the 3 replicas")
        preflight.check(config_lib.replace(config, batch_size=9))

    def test_batch_not_divisible_by_the_workers(self):
        cluster = '{"cluster": {"worker": ["a:1", "b:1", "c:1"]}, "task": {"type": "worker"}}'
        with mock.patch.dict(os.environ, {"TF_CONFIG": cluster}):
            config = self.config(strategy="multi_worker")
            replicas = preflight.expected_replicas(config)
            self.assertEqual(replicas % 3, 0)
            self.assertProblem(config, "--batch_size=8", f"the {replicas} replicas")

    def test_run_stops_before_writing_anything(self):
        output_dir = os.path.join(self.get_temp_dir(), "never")
        config = config_lib.replace(self.config(model_widths=OTHER_WIDTHS),
                                    output_dir=output_dir)
        with self.assertRaisesRegex(config_lib.ConfigError, "layer 'stem_conv'"):
            run(config)
        self.assertFalse(os.path.exists(output_dir))

    def test_check_leaves_tensorflow_unstarted(self):
        """After ``check`` (which builds the network with shape-only variables) the CPU can
        still be split into logical devices, and no variable was allocated."""
        script = textwrap.dedent(f"""
            import tensorflow as tf
            from keras.src.backend.common import global_state
            from tests.train_testutil import tiny_config
            from tftransfer.training import preflight
            preflight.check(tiny_config(None, model_widths=[4, 8, 16], source="custom",
                                        weights={self.weights!r}, source_classes=4,
                                        scheme="l2_sp_fisher", fisher_file={self.fisher!r},
                                        lr_multipliers=["stem=0.1"], strategy="mirrored",
                                        cpu_logical_devices=2))
            assert not global_state.get_global_attribute("uninitialized_variables")
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
            print(len(tf.config.list_logical_devices("CPU")))
        """)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                text=True, cwd=ROOT, env=environment(), timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertEqual(result.stdout.split()[-1], "2")


if __name__ == "__main__":
    tf.test.main()
