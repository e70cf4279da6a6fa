"""The torch-free checkpoint reader against torch.load(weights_only=True) (torch: test only)."""
import ast
import collections
import os
import pickle
import tempfile
import zipfile

import numpy as np
import tensorflow as tf

from tftransfer.models import pretrained
from tftransfer.weights.torch_checkpoint import (CheckpointFormatError, UnsafeCheckpointError,
                                                 read_checkpoint, read_state_dict)

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the test extra
    torch = None

NEEDS_TORCH = "torch is a test dependency: pip install torch==2.13.0"


def _small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, groups=4), torch.nn.Flatten(), torch.nn.Linear(4, 2))


def _odd_tensors():
    """Tensors whose storage layout is not the plain contiguous case, and other dtypes."""
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    return collections.OrderedDict(
        transposed=base.t(), sliced=base[1:3, 2:5], scalar=torch.tensor(2.5),
        empty=torch.zeros(0, 3), half=torch.randn(5).half(), bf16=torch.randn(3).bfloat16(),
        flags=torch.tensor([True, False, True]), int8=torch.tensor([-3, 7], dtype=torch.int8),
        int32=torch.tensor([1 << 30], dtype=torch.int32), uint8=torch.arange(4).byte(),
        complex=torch.randn(2, dtype=torch.complex64),
        parameter=torch.nn.Parameter(torch.randn(2, 2)),
        expanded=torch.randn(3, 1).expand(3, 4),  # stride 0
        overlapping=torch.arange(6.0).as_strided((3, 3), (1, 1)))


def _tempdir(test):
    directory = tempfile.TemporaryDirectory()
    test.addCleanup(directory.cleanup)
    return directory.name


def _as_numpy(tensor):
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: compare bit patterns
        return tensor.view(torch.int16).numpy()
    return tensor.numpy()


class TorchCheckpointReaderTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        if torch is None:
            self.skipTest(NEEDS_TORCH)
        self.dir = _tempdir(self)

    def _save(self, obj, name, zip_format):
        path = os.path.join(self.dir, name)
        torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
        return path

    def assertSameAsTorch(self, ours, theirs, where="checkpoint"):
        if isinstance(theirs, torch.Tensor):
            self.assertIsInstance(ours, np.ndarray, where)
            expected = _as_numpy(theirs)
            got = ours.view(np.int16) if ours.dtype.name == "bfloat16" else ours
            self.assertEqual(got.dtype, expected.dtype, where)
            self.assertEqual(got.shape, expected.shape, where)
            np.testing.assert_array_equal(got, expected, err_msg=where)
        elif isinstance(theirs, dict):
            self.assertEqual(type(ours), type(theirs), where)
            self.assertEqual(list(ours), list(theirs), where)
            for key in theirs:
                self.assertSameAsTorch(ours[key], theirs[key], f"{where}[{key!r}]")
        else:
            self.assertEqual(ours, theirs, where)

    def test_zip_and_legacy_files_match_torch_load(self):
        state = _small_net().state_dict()
        state.update(_odd_tensors())
        checkpoint = {"state_dict": state, "epoch": 7, "arch": "small", "best": 0.5}
        for zip_format in (True, False):
            with self.subTest(zip_format=zip_format):
                path = self._save(checkpoint, f"ckpt_{zip_format}.pth", zip_format)
                self.assertEqual(zipfile.is_zipfile(path), zip_format)
                self.assertSameAsTorch(read_checkpoint(path),
                                       torch.load(path, weights_only=True))

    def test_state_dict_metadata_is_kept(self):
        state = _small_net().state_dict()
        path = self._save(state, "net.pth", zip_format=False)
        self.assertEqual(read_checkpoint(path)._metadata,
                         torch.load(path, weights_only=True)._metadata)

    def test_wrapper_and_data_parallel_prefix_are_removed(self):
        net = _small_net()
        wrapped = torch.nn.DataParallel(net).state_dict()
        self.assertTrue(all(k.startswith("module.") for k in wrapped))
        for zip_format in (True, False):
            path = self._save({"state_dict": wrapped, "epoch": 1}, f"dp_{zip_format}.pth.tar",
                              zip_format)
            got = read_state_dict(path)
            self.assertEqual(list(got), list(net.state_dict()))
            for key, value in net.state_dict().items():
                np.testing.assert_array_equal(got[key], value.numpy())

    def test_byte_budget_bounds_what_a_read_materialises(self):
        state = {"broadcast": torch.ones(1).expand(1000, 1000)}  # 4 MB from 4 bytes of data
        for zip_format in (True, False):
            with self.subTest(zip_format=zip_format):
                path = self._save(state, f"budget_{zip_format}.pth", zip_format)
                with self.assertRaisesRegex(UnsafeCheckpointError,
                                            r"size \(1000, 1000\).*max_bytes"):
                    read_checkpoint(path, max_bytes=1 << 20)
                self.assertSameAsTorch(read_checkpoint(path, max_bytes=8 << 20),
                                       torch.load(path, weights_only=True))
                np.testing.assert_array_equal(
                    read_state_dict(path, max_bytes=8 << 20)["broadcast"], 1.0)

    def test_real_efficientnet_lite0_file_matches_torch_load(self):
        try:
            path = pretrained.efficientnet_lite0_checkpoint()
        except pretrained.WeightsUnavailableError as error:
            self.skipTest(str(error))
        self.assertFalse(zipfile.is_zipfile(path), "the packaged file is in legacy format")
        ours, theirs = read_checkpoint(path), torch.load(path, weights_only=True)
        self.assertLen(theirs, 296)
        self.assertSameAsTorch(ours, theirs)


class _RunsShell:
    """Pickles as a call to os.system: what a malicious checkpoint would contain."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _CallsEval:
    def __reduce__(self):
        return eval, ("1 + 1",)


class RefusedGlobalsTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = _tempdir(self)
        self.marker = os.path.join(self.dir, "executed")
        self.payload = _RunsShell(f"touch {self.marker}")
        self.system = f"{os.system.__module__}.system"  # 'posix.system' on Linux

    def assertRefused(self, path, global_name):
        with self.assertRaisesRegex(UnsafeCheckpointError, global_name.replace(".", r"\.")):
            read_checkpoint(path)
        self.assertFalse(os.path.exists(self.marker), "the pickled command was executed")

    def test_plain_pickle_naming_os_system_is_refused(self):
        path = os.path.join(self.dir, "evil.pth")
        with open(path, "wb") as f:
            pickle.dump(self.payload, f, protocol=2)
        self.assertRefused(path, self.system)

    def test_torch_files_naming_os_system_or_eval_are_refused(self):
        if torch is None:
            self.skipTest(NEEDS_TORCH)
        for zip_format in (True, False):
            for payload, name in ((self.payload, self.system), (_CallsEval(), "builtins.eval")):
                with self.subTest(zip_format=zip_format, name=name):
                    path = os.path.join(self.dir, f"evil_{zip_format}.pth")
                    torch.save({"weight": torch.ones(2), "hook": payload}, path,
                               _use_new_zipfile_serialization=zip_format)
                    self.assertRefused(path, name)

    def test_pickled_module_is_refused_with_advice(self):
        if torch is None:
            self.skipTest(NEEDS_TORCH)
        path = os.path.join(self.dir, "module.pth")
        torch.save(torch.nn.Linear(2, 2), path)
        with self.assertRaisesRegex(UnsafeCheckpointError,
                                    r"torch\.nn\.modules\.linear\.Linear.*state_dict"):
            read_checkpoint(path)

    def test_files_that_are_not_checkpoints(self):
        path = os.path.join(self.dir, "noise.pth")
        with open(path, "wb") as f:
            f.write(np.random.default_rng(0).bytes(256))
        with self.assertRaisesRegex(CheckpointFormatError, "not a PyTorch checkpoint"):
            read_checkpoint(path)
        with self.assertRaisesRegex(FileNotFoundError, "missing.pth"):
            read_checkpoint(os.path.join(self.dir, "missing.pth"))
        with tempfile.NamedTemporaryFile(suffix=".zip", dir=self.dir, delete=False) as f:
            with zipfile.ZipFile(f, "w") as archive:
                archive.writestr("readme.txt", "hello")
        with self.assertRaisesRegex(CheckpointFormatError, "data.pkl"):
            read_checkpoint(f.name)


class NoTorchInLibraryTest(tf.test.TestCase):

    def test_library_never_imports_torch(self):
        package = os.path.dirname(os.path.dirname(os.path.abspath(pretrained.__file__)))
        offenders = []
        for directory, _, files in os.walk(package):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                               else [node.module or ""] if isinstance(node, ast.ImportFrom)
                               else [])
                    offenders += [f"{path}: {m}" for m in modules
                                  if m.split(".")[0] == "torch"]
        self.assertEqual(offenders, [])
