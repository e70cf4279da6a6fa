"""``import tftransfer``: every advertised name resolves lazily, and the import itself stays
light (no Keras, TensorFlow or optional extra until a name needs them)."""
import importlib
import inspect
import json
import os
import subprocess
import sys
import types

import tensorflow as tf

import tftransfer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Imported by `import tftransfer` alone: none of these (the extras, and the core's own
# Keras / TensorFlow, which load with the first core name).
HEAVY = ("keras", "tensorflow", "jax", "torch", "numpy", "pandas", "matplotlib", "scipy",
         "tensorflow_datasets", "absl", "sklearn", "PIL", "tensorboard")


def imported_after(*steps):
    """The modules of :data:`HEAVY` and ``tftransfer.*`` loaded after each of ``steps``
    (code run one after another in one fresh interpreter, this checkout first on the path):
    a list of sets, one per step."""
    snapshot = (f"print('LOADED' + json.dumps(sorted(m for m in sys.modules if "
                f"m.split('.')[0] in {HEAVY!r} and '.' not in m or "
                f"m.startswith('tftransfer'))))")
    # json and sys are imported before the first step and left in sys.modules: neither is
    # in HEAVY nor tftransfer.*, so the snapshots do not see them.
    probe = "import sys, json\n" + "".join(f"{code}\n{snapshot}\n" for code in steps)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"{steps!r} failed:\n{result.stderr[-3000:]}")
    lines = [l for l in result.stdout.splitlines() if l.startswith("LOADED")]
    if len(lines) != len(steps):
        raise AssertionError(f"{len(lines)} snapshots for {len(steps)} steps:\n"
                             f"{result.stdout[-3000:]}")
    return [set(json.loads(l[len("LOADED"):])) for l in lines]


# The three import probes, in this order in one interpreter (one Keras/TensorFlow import
# instead of two): the plain import, the first core name, then ``tftransfer.models.build``
# (the failure). The build step still resolves ``tftransfer.models`` through the
# package's ``__getattr__``: the test checks that the core name did not import it.
PLAIN, CORE_NAME = "import tftransfer", "tftransfer.penalize"
BUILD = ("tm = tftransfer.models.build('small_resnet', 3, 'none', input_shape=(16, 16, 1),\n"
         "                             arch_kwargs={'widths': (4,), 'blocks_per_stage': 1})\n"
         "assert tm.model.output.shape[-1] == 3")


# The public API whose functions and methods carry argument and return annotations.
ANNOTATED_MODULES = ("tftransfer", "tftransfer.penalty", "tftransfer.regularizers",
                     "tftransfer.fused_penalty", "tftransfer.fisher", "tftransfer.variables",
                     "tftransfer.batching", "tftransfer.models.build",
                     "tftransfer.methods.registry", "tftransfer.weights.convert",
                     "tftransfer.weights.torch_checkpoint", "tftransfer.analysis.cli",
                     "tftransfer.analysis.deviation", "tftransfer.analysis.fisher_stats",
                     "tftransfer.analysis.gradients", "tftransfer.analysis.landscape",
                     "tftransfer.analysis.plots", "tftransfer.analysis.r2",
                     "tftransfer.analysis.source_task", "tftransfer.analysis.spectrum",
                     "tftransfer.analysis.style", "tftransfer.analysis.weight_map",
                     "tftransfer.methods.bss", "tftransfer.methods.co_tuning",
                     "tftransfer.methods.delta",
                     "tftransfer.methods.group_lasso_sp_layer",
                     "tftransfer.methods.l2_sp_k", "tftransfer.methods.loss_terms",
                     "tftransfer.methods.lp_ft", "tftransfer.methods.lwf",
                     "tftransfer.methods.mars_pgm", "tftransfer.methods.spd",
                     "tftransfer.methods.stochnorm", "tftransfer.methods.wise_ft",
                     "tftransfer.models.batch_norm", "tftransfer.models.dilated_resnet",
                     "tftransfer.models.efficientnet_lite",
                     "tftransfer.models.feature_extraction", "tftransfer.models.freezing",
                     "tftransfer.models.kerashub", "tftransfer.models.layers",
                     "tftransfer.models.lr_multipliers", "tftransfer.models.preprocessing",
                     "tftransfer.models.pretrained", "tftransfer.models.resnet_torch",
                     "tftransfer.models.small_resnet", "tftransfer.models.units",
                     "tftransfer.models.weights_file",
                     "tftransfer.models.segmentation", "tftransfer.models.segmentation_heads",
                     "tftransfer.segmentation.inference", "tftransfer.segmentation.metrics",
                     "tftransfer.segmentation.schedules", "tftransfer.weights.layouts",
                     "tftransfer.io_utils", "tftransfer.optimizer_wrappers",
                     "tftransfer.extras", "tftransfer.train")
# Classes whose public methods are protocol hooks of their base (pickle's unpickler).
UNANNOTATED_CLASSES = ("RestrictedUnpickler",)


def public_callables(module):
    """``(qualified name, function)`` of the public functions of ``module`` and of the
    public methods (``__init__`` and ``__call__`` included) of its public classes, those it
    defines itself."""
    found = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            found.append((name, obj))
        elif inspect.isclass(obj) and name not in UNANNOTATED_CLASSES:
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__", "__call__"):
                    continue
                if isinstance(member, (classmethod, staticmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member) and member.__module__ == module.__name__:
                    found.append((f"{name}.{attr}", member))
    return found


def missing_annotations(function):
    """What of ``function``'s signature is not annotated (its return, its arguments)."""
    signature = inspect.signature(function)
    missing = [] if signature.return_annotation is not inspect.Signature.empty else ["return"]
    return missing + [p.name for p in signature.parameters.values()
                      if p.annotation is inspect.Parameter.empty
                      and p.name not in ("self", "cls")]


class PackageImportsTest(tf.test.TestCase):

    def test_public_api_is_annotated(self):
        unannotated = {}
        for module_name in ANNOTATED_MODULES:
            module = importlib.import_module(module_name)
            for name, function in public_callables(module):
                missing = missing_annotations(function)
                if missing:
                    unannotated[f"{module_name}.{name}"] = missing
        self.assertEqual(unannotated, {})

    def test_the_annotation_check_can_fail(self):
        def unannotated(x, y: int = 0):
            return x
        self.assertEqual(missing_annotations(unannotated), ["return", "x"])
        checked = dict(public_callables(importlib.import_module("tftransfer.penalty")))
        self.assertIn("penalize", checked)
        self.assertIn("PenaltyPlan.__init__", checked)

    def test_py_typed_is_shipped(self):
        self.assertTrue(os.path.isfile(os.path.join(ROOT, "tftransfer", "py.typed")))
        with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
            self.assertIn('"py.typed"', f.read())

    def test_every_advertised_name_resolves(self):
        for name in tftransfer.__all__:
            with self.subTest(name=name):
                value = getattr(tftransfer, name)
                if name in tftransfer.SUBMODULES:
                    self.assertIsInstance(value, types.ModuleType)
                    self.assertEqual(value.__name__, f"tftransfer.{name}")
                else:
                    self.assertEqual(value, getattr(sys.modules[tftransfer._CORE[name]], name))

    def test_core_names_are_the_defining_modules_objects(self):
        from tftransfer import fused_penalty, penalty, variables
        self.assertIs(tftransfer.penalize, penalty.penalize)
        self.assertIs(tftransfer.SCHEMES, penalty.SCHEMES)
        self.assertIs(tftransfer.StartingPoint, variables.StartingPoint)
        self.assertIs(tftransfer.fused_optimizer, fused_penalty.fused_optimizer)

    def test_dir_lists_the_subpackages(self):
        listed = dir(tftransfer)
        for name in ("models", "weights", "data", "training", "analysis", "methods",
                     "segmentation", "fisher", "regularizers", "penalize", "__version__"):
            self.assertIn(name, listed)

    def test_unknown_attribute_raises_attribute_error(self):
        with self.assertRaisesRegex(AttributeError, "no attribute 'modles'.*models"):
            tftransfer.modles  # noqa: B018

    @classmethod
    def probe(cls):
        """``imported_after(PLAIN, CORE_NAME, BUILD)``, run once for the class."""
        if not hasattr(cls, "_loaded"):
            cls._loaded = imported_after(PLAIN, CORE_NAME, BUILD)
        return cls._loaded

    def test_models_build_after_plain_import(self):
        """The issue's failure: ``tftransfer.models.build`` right after ``import tftransfer``
        (and the first core name, which loads Keras but not ``tftransfer.models``: the
        build's ``tftransfer.models`` is the package's lazy attribute, as after a plain
        import)."""
        _, core, built = self.probe()
        self.assertNotIn("tftransfer.models", core)
        self.assertIn("tftransfer.models", built)
        self.assertIn("tftransfer.models.build", built)

    def test_import_tftransfer_is_light(self):
        loaded = self.probe()[0]
        self.assertEqual(loaded & set(HEAVY), set())
        self.assertEqual(loaded, {"tftransfer"})

    def test_core_name_loads_no_extra(self):
        """The first core name loads Keras, but none of tftransfer's optional subpackages
        (tftransfer.data, .analysis, .training: the extras)."""
        loaded = self.probe()[1]
        self.assertIn("keras", loaded)
        self.assertIn("tftransfer.penalty", loaded)
        for extra in ("tftransfer.data", "tftransfer.analysis", "tftransfer.training",
                      "tensorflow_datasets"):
            self.assertNotIn(extra, loaded)

    def test_the_probe_sees_each_steps_imports(self):
        """The snapshots are cumulative and per step (the probe can fail): a step that
        imports a heavy module shows it from that step on."""
        first, second = imported_after("import tftransfer", "import numpy")
        self.assertNotIn("numpy", first)
        self.assertIn("numpy", second)
        self.assertIn("tftransfer", second)


if __name__ == "__main__":
    tf.test.main()
