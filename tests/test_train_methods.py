"""``--method`` in the driver (issue 19): every registered method runs through
``tftransfer.training.run.run`` on the tiny synthetic set and records its name and
parameters; its flags carry the registry's defaults, are left out of the digest at their
default, and are refused for another method with the reason; the methods act in the run
(the projection ball of MARS/Frobenius holds in the final checkpoint, StochNorm's layers
are trained, the WiSE-FT grid is exact at a = 0 and a = 1 and the run's model is the one at
``--wise_ft_alpha``). Resume after SIGKILL: tests/test_train_methods_resume.py."""
import csv
import json
import math
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from tests.train_testutil import TINY, run_driver, tiny_config, tiny_flags
from tftransfer import methods as methods_lib
from tftransfer.methods import mars_pgm
from tftransfer.models.small_resnet import small_resnet
from tftransfer.training import config as config_lib
from tftransfer.training import flags as flags_lib
from tftransfer.training import identity
from tftransfer.training import methods as methods_glue
from tftransfer.training.run import run

STEPS = 6
GAMMA = 0.05  # small enough that the projection binds within STEPS steps
BASE = dict(dataset="synthetic", arch="small_resnet", resize=20, crop_size=16)


def parse(*argv):
    values = flags.FlagValues()
    flags_lib.define_flags(values)
    values(["train", *argv])
    return values


def source_weights(root):
    """A tiny source network trained by the driver itself (its weights file)."""
    source = os.path.join(root, "source")
    run(tiny_config(source, source="none", scheme="none", export=False, save_weights=True,
                    log_every=0, checkpoint_every=0))
    return os.path.join(source, "model.weights.h5")


def tiny_network(weights):
    """The tiny small ResNet of the driver tests with the weights file ``weights``."""
    model = small_resnet(input_shape=(16, 16, 3), num_classes=4, widths=(4, 8))
    model.load_weights(weights)
    return model


def method_config(output_dir, weights, method, **overrides):
    values = dict(source="custom", weights=weights, source_classes=4, method=method,
                  train_steps=STEPS, lr_boundaries=[4], checkpoint_every=3, log_every=2,
                  export=False)
    if method in ("lp_ft", "wise_ft"):
        values["probe_epochs"] = 20
    return tiny_config(output_dir, **dict(values, **overrides))


class MethodFlagsTest(tf.test.TestCase):
    """The declaration: one choice per registered method, one flag per hyper-parameter."""

    def test_every_registered_method_is_a_choice(self):
        self.assertEqual(config_lib.METHODS, ("none",) + tuple(methods_lib.names()))
        self.assertEqual(config_lib.make().method.method, "none")
        self.assertEqual(len(methods_lib.names()), 13)

    def test_every_hyper_parameter_is_a_flag_with_the_registrys_default(self):
        table = config_lib.MethodConfig.PARAMETERS
        self.assertCountEqual(table, methods_lib.names())
        for method in methods_lib.names():
            for name, default in methods_lib.get(method).hyper_parameters.items():
                self.assertIn(name, table[method], method)
                flag = table[method][name]
                stored = config_lib.default_value(config_lib.LEAVES[flag].field)
                if math.isinf(default):  # gamma_new: free by default, unset flag
                    self.assertIsNone(stored, flag)
                else:
                    self.assertEqual(stored, default, f"{method}.{name} (--{flag})")
        for flag in config_lib.MethodConfig.APPLIES:
            leaf = config_lib.LEAVES[flag]
            self.assertEqual(leaf.section, "method")
            self.assertTrue(leaf.field.metadata["help"])
            self.assertEqual(leaf.field.metadata["since"], config_lib.METHODS_RELEASE)

    def test_flags_parse_and_help_lists_the_section(self):
        values = parse("--method=spd", "--spd_strength=0.5", "--wise_ft_grid=0,1")
        config = flags_lib.config_from_flags(values, validate=False)
        self.assertEqual((config.method.method, config.method.spd_strength,
                          config.method.wise_ft_grid), ("spd", 0.5, [0.0, 1.0]))
        self.assertIn("tftransfer.training.config.method:", values.get_help())
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "should be one of"):
            parse("--method=l3_sp")

    def test_digest_unchanged_at_none_and_changed_by_a_method(self):
        base = config_lib.make(**dict(TINY, output_dir="x"))
        self.assertEqual(identity.digest(base), "2ad6ab50d12c")  # before methods existed
        digests = {identity.digest(config_lib.replace(base, method=m))
                   for m in config_lib.METHODS}
        self.assertLen(digests, len(config_lib.METHODS))
        self.assertNotEqual(identity.digest(config_lib.replace(base, method="bss", bss_eta=1)),
                            identity.digest(config_lib.replace(base, method="bss")))
        stored = {k: v for k, v in identity.of(base).items()
                  if k not in config_lib.LATER_OPTIONS}  # an identity of before
        identity.check(base, stored, "an unfinished run", "here")
        with self.assertRaisesRegex(identity.RunMismatchError,
                                    r"--method: 'none' there, 'spd' now"):
            identity.check(config_lib.replace(base, method="spd"), stored, "a run", "here")

    def test_record_of_the_method(self):
        config = config_lib.make(**BASE, method="lwf", lwf_lambda=0.5)
        self.assertEqual(methods_glue.record(config),
                         {"method": "lwf", "method_kind": "loss", "method_scheme": "l2_sp",
                          "method_parameters": {"lambda": 0.5, "temperature": 2.0}})
        self.assertEqual(methods_glue.record(config_lib.make(**BASE, method="l2_sp_k"))[
            "method_scheme"], None)  # it replaces the scheme
        self.assertEqual(methods_glue.record(config_lib.make(**BASE))["method_parameters"],
                         {})


class MethodRefusalTest(tf.test.TestCase):

    def assertRefused(self, message, **values):
        with self.assertRaisesRegex(config_lib.ConfigError, message, msg=str(values)):
            config_lib.validate(config_lib.make(**dict(BASE, **values)))

    def test_every_method_alone_is_valid(self):
        for method in config_lib.METHODS:
            config_lib.validate(config_lib.make(**BASE, method=method))

    def test_hyper_parameter_of_another_method_is_refused(self):
        self.assertRefused(r"--spd_strength is a hyper-parameter of --method=spd, not of "
                           r"--method=none; set the method or drop --spd_strength",
                           spd_strength=0.5)
        self.assertRefused(r"--bss_eta is a hyper-parameter of --method=bss, not of "
                           r"--method=lwf", method="lwf", bss_eta=0.1)
        self.assertRefused(r"--delta_temperature is a hyper-parameter of --method=delta, "
                           r"not of --method=delta_fm", method="delta_fm",
                           delta_temperature=2.0)
        self.assertRefused(r"--wise_ft_grid is a hyper-parameter of --method=wise_ft, not of "
                           r"--method=lp_ft", method="lp_ft", wise_ft_grid=[0.5])
        for method in ("lp_ft", "wise_ft"):  # shared by the two procedures
            config_lib.validate(config_lib.make(**BASE, method=method, probe_epochs=3))
        config_lib.validate(config_lib.make(**BASE, method="frobenius_pgm", pgm_gamma=1.0))

    def test_replaced_scheme_options_are_refused(self):
        self.assertRefused(r"--scheme=l2 has no effect in this run \(--method=delta replaces "
                           r"the --scheme penalty", method="delta", scheme="l2")
        self.assertRefused(r"--alpha=0.5 has no effect .*--method=delta_fm", method="delta_fm",
                           alpha=0.5)
        self.assertRefused(r"--epsilon=0.001 has no effect .*--method=l2_sp_k does not smooth",
                           method="l2_sp_k", epsilon=1e-3)
        self.assertRefused(r"--scheme=l2 has no effect .*--method=group_lasso_sp_layer is "
                           r"the penalty", method="group_lasso_sp_layer", scheme="l2")
        config_lib.validate(config_lib.make(**BASE, method="delta", scheme="none"))
        config_lib.validate(config_lib.make(**BASE, method="group_lasso_sp_layer",
                                            epsilon=1e-8, alpha=0.2))
        config = config_lib.make(**BASE, method="delta")
        self.assertContainsSubset(["scheme", "alpha", "beta"],
                                  config_lib.without_effect(config))

    def test_combinations_that_cannot_work_are_refused(self):
        self.assertRefused(r"--method=lwf needs a pretrained source .*--source=none",
                           method="lwf", source="none", scheme="l2")
        config_lib.validate(config_lib.make(**BASE, method="bss", source="none", scheme="l2"))
        self.assertRefused(r"--method=stochnorm replaces batch norm .*--freeze_batch_norm",
                           method="stochnorm", freeze_batch_norm=True)
        self.assertRefused(r"--method=spd wraps the optimizer's update, as --lr_multipliers",
                           method="spd", lr_multipliers=["first:1=0.1"])
        self.assertRefused(r"--method=bss is implemented for --task=classification only",
                           method="bss", task="segmentation", dataset="scenes",
                           scenes_source="synthetic", scenes_size=32,
                           scenes_scale=[0.5, 1.0], crop_size=32)
        self.assertRefused(r"--stochnorm_p=1.5 is a probability", method="stochnorm",
                           stochnorm_p=1.5)
        self.assertRefused(r"--pgm_gamma_new=0.0 must be finite and > 0", method="mars_pgm",
                           pgm_gamma_new=0.0)
        self.assertRefused(r"--wise_ft_grid=\[1.5\] must be one or more coefficients",
                           method="wise_ft", wise_ft_grid=[1.5])
        self.assertRefused(r"--wise_ft_alpha=2.0 must be in \[0, 1\]", method="wise_ft",
                           wise_ft_alpha=2.0)
        self.assertRefused(r"--pgm_gamma=0.0 must be > 0", method="mars_pgm", pgm_gamma=0.0)

    def test_model_build_refuses_a_method(self):
        from tftransfer.training.model import build_compiled
        with self.assertRaisesRegex(ValueError, "built by tftransfer.training.methods"):
            build_compiled(config_lib.make(**BASE, method="bss"), None, 4, (16, 16, 3))


class MethodDriverRunTest(tf.test.TestCase):
    """One driver run per method (and ``none``) on the tiny synthetic set."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="tftransfer-methods-")
        cls.weights = source_weights(cls.root)
        special = {"mars_pgm": dict(pgm_gamma=GAMMA, save_weights=True),
                   "frobenius_pgm": dict(pgm_gamma=GAMMA, save_weights=True),
                   "lp_ft": dict(deterministic=True),
                   "wise_ft": dict(deterministic=True, wise_ft_grid=[0.0, 0.5, 1.0])}
        cls.records = {}
        for method in config_lib.METHODS:
            cls.records[method] = run(method_config(cls.out(method), cls.weights, method,
                                                    **special.get(method, {})))

    @classmethod
    def out(cls, method):
        return os.path.join(cls.root, method)

    def test_every_run_finishes_and_records_its_method(self):
        for method, returned in self.records.items():
            with open(os.path.join(self.out(method), "results.json")) as f:
                record = json.load(f)
            self.assertEqual(record, json.loads(json.dumps(returned)), method)
            self.assertEqual(record["method"], method)
            self.assertEqual(record["flags"]["method"], method)
            self.assertEqual(record["steps"], STEPS, method)
            self.assertBetween(record["accuracy"], 0.0, 1.0)
            self.assertTrue(np.isfinite(record["cross_entropy"]), method)
            config = method_config("x", self.weights, method)
            expected = config.method.parameters(config)
            if method in ("mars_pgm", "frobenius_pgm"):
                expected["gamma"] = GAMMA
            if method == "wise_ft":
                expected["grid"] = [0.0, 0.5, 1.0]
            self.assertEqual(record["method_parameters"], expected, method)
            kind = None if method == "none" else methods_lib.get(method).kind
            self.assertEqual(record["method_kind"], kind)

    def test_optimizer_methods_train_with_their_optimizer(self):
        self.assertEqual(self.records["none"]["optimizer"], "SGD")
        self.assertEqual(self.records["spd"]["optimizer"], "SPDSGD")
        self.assertEqual(self.records["mars_pgm"]["optimizer"], "MARSPGMSGD")

    def test_projection_ball_holds_for_the_trained_network(self):
        """Every inherited kernel of the trained network lies in the ball of radius
        ``--pgm_gamma`` around its source weights (max row L1 distance for mars_pgm, the
        Frobenius distance for frobenius_pgm), and the ball binds (a kernel is on it)."""
        start = tiny_network(self.weights)
        for method, norm in (("mars_pgm", "mars"), ("frobenius_pgm", "frobenius")):
            trained = tiny_network(os.path.join(self.out(method), "model.weights.h5"))
            distances = {}
            for layer in start.layers:
                if getattr(layer, "kernel", None) is None or layer.name == "predictions":
                    continue
                distances[layer.name] = mars_pgm.distance(
                    trained.get_layer(layer.name).kernel.numpy(), layer.kernel.numpy(), norm)
            self.assertNotEmpty(distances)
            self.assertLessEqual(max(distances.values()), GAMMA * (1 + 1e-5), method)
            self.assertGreater(max(distances.values()), 0.99 * GAMMA, method)

    def test_wise_ft_grid_is_exact_at_the_ends_and_the_run_is_at_its_alpha(self):
        wise, lp = self.records["wise_ft"], self.records["lp_ft"]
        grid = {p["alpha"]: p for p in wise["wise_ft"]["grid"]}
        self.assertEqual(sorted(grid), [0.0, 0.5, 1.0])
        self.assertEqual(wise["wise_ft"]["eval_split"], wise["eval_split"])
        self.assertEqual(wise["wise_ft"]["eval_split"], "test")
        self.assertEqual(wise["wise_ft"]["alpha"], 0.5)
        # a = 1: the fine-tuned network, the LP-FT run of the same flags (op determinism on).
        self.assertEqual(grid[1.0]["accuracy"], lp["accuracy"])
        self.assertAllClose(grid[1.0]["cross_entropy"], lp["cross_entropy"], rtol=1e-6)
        # the run's model is theta(--wise_ft_alpha), evaluated the same way as the grid.
        self.assertEqual(wise["accuracy"], grid[0.5]["accuracy"])
        self.assertAllClose(wise["cross_entropy"], grid[0.5]["cross_entropy"], rtol=1e-9)
        for record in (wise, lp):
            probe = record["linear_probe"]
            self.assertEqual(probe["examples"], record["num_train"])
            self.assertBetween(probe["epochs"], 1, 20)
            self.assertTrue(np.isfinite(probe["final_loss"]))

    def test_wise_ft_theta_0_is_the_source_network_with_the_probed_head(self):
        """The checkpoint holds the phase flag (1: probed) and theta_0: the source
        network's backbone weights exactly, and a head that is not the fresh one."""
        reader = tf.train.load_checkpoint(os.path.join(self.out("wise_ft"), "checkpoints"))
        self.assertEqual(int(reader.get_tensor("method_probed/.ATTRIBUTES/VARIABLE_VALUE")),
                         1)

        def theta_0(path):
            return reader.get_tensor(f"method_theta_0/references/{path.replace('/', '.S')}"
                                     "/.ATTRIBUTES/VARIABLE_VALUE")

        source = tiny_network(self.weights)
        compared = 0
        for variable in source.weights:
            if not variable.path.startswith("predictions"):
                self.assertAllEqual(theta_0(variable.path), variable.numpy(), variable.path)
                compared += 1
        self.assertGreater(compared, 10)
        self.assertEqual(theta_0("predictions/kernel").shape, (8, 4))

    def test_stochnorm_states_are_checkpointed_per_batch_norm_layer(self):
        reader = tf.train.load_checkpoint(os.path.join(self.out("stochnorm"), "checkpoints"))
        states = [k for k in reader.get_variable_to_shape_map()
                  if k.startswith("method_seed_states/")]
        batch_norms = [layer for layer in tiny_network(self.weights).layers
                       if isinstance(layer, keras.layers.BatchNormalization)]
        self.assertNotEmpty(batch_norms)
        self.assertLen(states, len(batch_norms))

    def test_a_loss_method_adds_its_term_to_the_training_loss(self):
        """Co-Tuning's term (lambda * a cross-entropy over the source classes) is in the
        logged loss: same data and initial weights as the plain run, a larger loss."""
        first = {}
        for method in ("none", "co_tuning"):
            with open(os.path.join(self.out(method), "train_log.csv"), newline="") as f:
                first[method] = float(next(csv.DictReader(f))["loss"])
        self.assertGreater(first["co_tuning"], first["none"] + 0.1)


class MethodMirroredTest(tf.test.TestCase):
    """Under ``--strategy=mirrored`` (two logical CPUs, a fresh process): the linear probe
    runs beside the mirrored head and a loss method's wrapper trains on both replicas."""

    def test_lp_ft_and_delta_fm_on_two_replicas(self):
        root = tempfile.mkdtemp(prefix="tftransfer-methods-mirrored-")
        weights = source_weights(root)
        for method, extra in (("lp_ft", dict(probe_epochs=5)), ("delta_fm", {})):
            out = os.path.join(root, method)
            done = run_driver(*tiny_flags(out, source="custom", weights=weights,
                                          source_classes=4, method=method, train_steps=4,
                                          lr_boundaries=[2], checkpoint_every=2,
                                          log_every=2, export=False, strategy="mirrored",
                                          cpu_logical_devices=2, **extra))
            self.assertEqual(done.returncode, 0, done.stderr[-3000:])
            with open(os.path.join(out, "results.json")) as f:
                record = json.load(f)
            self.assertEqual((record["method"], record["replicas"], record["steps"]),
                             (method, 2, 4))


if __name__ == "__main__":
    tf.test.main()
