"""Crafted, hostile checkpoints: the torch-free reader must refuse them, never crash or bloat.

Every crafted file is read in a child process that imports only the reader module (no
TensorFlow) and runs under an address-space limit of ``HEADROOM`` bytes above its baseline,
so a regression shows as a failed test (a segfault as return code -11, a huge allocation as
a MemoryError) instead of taking the machine down. The child prints the class and message
of the error it got; anything but ``CheckpointFormatError`` / ``UnsafeCheckpointError``
(a traceback, a signal, a read that returns) fails the test.
"""
import collections
import io
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import textwrap
import zipfile

import tensorflow as tf

from tftransfer_cli import convert as convert_command
from tftransfer.weights import torch_checkpoint

HEADROOM = 1 << 30  # bytes the child may allocate beyond python + numpy
CHILD_TIMEOUT_S = 120
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
CHILD = textwrap.dedent("""
    import importlib.util, json, resource, sys
    module_path, checkpoint, headroom = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = importlib.util.spec_from_file_location("torch_checkpoint", module_path)
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    with open("/proc/self/status") as status:
        baseline = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (baseline + headroom, baseline + headroom))
    try:
        reader.read_checkpoint(checkpoint)
    except (reader.CheckpointFormatError, reader.UnsafeCheckpointError) as error:
        print(json.dumps([type(error).__name__, str(error)]))
    else:
        print(json.dumps([None, "the file was read without an error"]))
""")


class _Global:
    """Pickles as a reference to ``module.name`` (as torch.save writes torch's globals)."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class _Call:
    """Pickles as ``func(*args)``: a REDUCE of a :class:`_Global` on a tuple."""

    def __init__(self, func, *args):
        self.func, self.args = func, args


class _Persistent:
    """Pickles as the persistent id ``pid`` (a torch storage reference)."""

    def __init__(self, *pid):
        self.pid = pid


class _Build:
    """Pickles as ``obj`` with its state set to ``state`` (a BUILD)."""

    def __init__(self, obj, state):
        self.obj, self.state = obj, state


class _Crafter(pickle._Pickler):  # the pure-Python pickler has an extensible dispatch
    """Writes protocol-2 pickles of plain data with :class:`_Global`, :class:`_Call`,
    :class:`_Persistent` and :class:`_Build` placeholders, importing nothing they name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Persistent) else None

    def save_global_ref(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    def save_call(self, obj):
        self.save(obj.func)
        self.save(obj.args)
        self.write(pickle.REDUCE)

    def save_build(self, obj):
        self.save(obj.obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    dispatch[_Global] = save_global_ref
    dispatch[_Call] = save_call
    dispatch[_Build] = save_build


def _dumps(obj):
    buffer = io.BytesIO()
    _Crafter(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _tensor(size, stride, offset=0, numel=4, storage_state=None):
    """What torch.save pickles for a tensor: ``_rebuild_tensor_v2(storage, offset, ...)``,
    its storage float32 ``numel`` elements (key "0") and, if given, BUILT with
    ``storage_state``."""
    storage = _Persistent("storage", _Global("torch", "FloatStorage"), "0", "cpu", numel)
    if storage_state is not None:
        storage = _Build(storage, storage_state)
    return _Call(_Global("torch._utils", "_rebuild_tensor_v2"), storage, offset, tuple(size),
                 tuple(stride), False, _Call(_Global("collections", "OrderedDict")))


def _floats(*values):
    return struct.pack(f"<{len(values)}f", *values)


def _write_zip(path, data_pkl, storages, compression=zipfile.ZIP_STORED):
    """A zip-format checkpoint (torch >= 1.6): ``data.pkl``, ``byteorder``, ``data/<key>``."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def _write_legacy(path, obj_pickle, storages, sys_info=SYS_INFO):
    """A legacy checkpoint: magic, version, system info, the object, keys, then for each
    storage its int64 element count and ``raw`` bytes (``storages``: key -> (numel, raw))."""
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, sys_info):
            f.write(pickle.dumps(header, protocol=2))
        f.write(obj_pickle)
        f.write(pickle.dumps(list(storages), protocol=2))
        for numel, raw in storages.values():
            f.write(struct.pack("<q", numel) + raw)
    return path


def _deep_lists(depth):
    """A list nested ``depth`` deep (raw opcodes: the pickler itself would recurse)."""
    return b"\x80\x02" + pickle.EMPTY_LIST * depth + pickle.APPEND * (depth - 1) + pickle.STOP


def _deep_tuple_key(depth):
    """``{((((),),),...): 1}``: hashing the key recurses ``depth`` deep in C."""
    return (b"\x80\x02" + pickle.EMPTY_DICT + pickle.EMPTY_TUPLE + pickle.TUPLE1 * depth
            + pickle.BININT1 + b"\x01" + pickle.SETITEM + pickle.STOP)


def _doubling_lists(levels):
    """``l[i + 1] = [l[i], l[i]]``: a few bytes per level, ``2 ** levels`` leaves."""
    inner = []
    for _ in range(levels):
        inner = [inner, inner]
    return pickle.dumps(inner, protocol=2)


def _counted(opcode, length):
    """``opcode`` (BINBYTES8, BINUNICODE8, BYTEARRAY8) declaring ``length`` bytes, then 8."""
    return b"\x80\x04" + opcode + struct.pack("<Q", length) + b"x" * 8 + pickle.STOP


class HostileCheckpointTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        self.module_path = os.path.abspath(torch_checkpoint.__file__)

    def _path(self, name):
        return os.path.join(self.dir, name)

    def read_in_child(self, path):
        """Reads ``path`` under the memory limit; returns the (error class, message) seen."""
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        try:
            child = subprocess.run(
                [sys.executable, "-c", CHILD, self.module_path, path, str(HEADROOM)],
                capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            self.fail(f"reading {path} took over {CHILD_TIMEOUT_S} s")
        self.assertEqual(child.returncode, 0,
                         f"reading {path} with {self.module_path} crashed (a negative code is "
                         f"a signal) or raised a raw exception:\n{child.stderr[-3000:]}")
        return tuple(json.loads(child.stdout.splitlines()[-1]))

    def assertRejected(self, path, error, pattern):
        got, message = self.read_in_child(path)
        self.assertEqual(got, error, message)
        self.assertIn(path, message, "the message names the file")
        self.assertRegex(message, pattern)

    def test_child_reads_a_valid_crafted_file(self):
        """The harness works: a sound crafted file reads under the limit."""
        for name, writer in (("ok.zip.pth", self._zip_state), ("ok.pth", self._legacy_state)):
            with self.subTest(name=name):
                path = writer(self._path(name), _tensor((2, 2), (1, 2)), _floats(1, 2, 3, 4))
                self.assertEqual(self.read_in_child(path),
                                 (None, "the file was read without an error"))
                state = torch_checkpoint.read_checkpoint(path)
                self.assertAllEqual(state["w"], [[1, 3], [2, 4]])

    def _zip_state(self, path, tensor, raw):
        return _write_zip(path, _dumps(collections.OrderedDict(w=tensor)), {"0": raw})

    def _legacy_state(self, path, tensor, raw):
        return _write_legacy(path, _dumps(collections.OrderedDict(w=tensor)),
                             {"0": (len(raw) // 4, raw)})

    def test_negative_stride_is_refused(self):
        cases = {"heap_read": ((4,), (-1,), 0), "far_read": ((4,), (-(1 << 40),), 3),
                 "one_negative_dim": ((2, 2), (2, -1), 1)}
        for name, (size, stride, offset) in cases.items():
            with self.subTest(name=name):
                path = self._zip_state(self._path(f"{name}.pth"),
                                       _tensor(size, stride, offset), _floats(1, 2, 3, 4))
                self.assertRejected(path, "CheckpointFormatError", "stride.*non-negative")

    def test_stride_zero_cannot_inflate_a_tiny_file(self):
        path = self._zip_state(self._path("stride0.pth"),
                               _tensor((20000, 20000), (0, 0), numel=1), _floats(1))
        self.assertLess(os.path.getsize(path), 1000)
        self.assertRejected(path, "UnsafeCheckpointError", r"1600000000 bytes.*max_bytes")

    def test_overlapping_view_beyond_its_storage_is_refused(self):
        path = self._zip_state(self._path("overrun.pth"), _tensor((3, 2), (1, 1), offset=1),
                               _floats(1, 2, 3, 4))
        self.assertRejected(path, "CheckpointFormatError", "outside its storage of 4 elements")

    def test_deflate_bomb_is_refused_before_inflating(self):
        path = self._path("bomb.pth")
        bomb_bytes = 3 * HEADROOM // 2
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.writestr("archive/data.pkl", _dumps(
                {"w": _tensor((bomb_bytes // 4,), (1,), numel=bomb_bytes // 4)}))
            with archive.open("archive/data/0", "w", force_zip64=True) as entry:
                zeros = bytes(1 << 20)
                for _ in range(bomb_bytes >> 20):
                    entry.write(zeros)
        self.assertLess(os.path.getsize(path), bomb_bytes // 500)
        self.assertRejected(path, "UnsafeCheckpointError", r"zip entry archive/data/0.*bomb")

    def test_declared_lengths_beyond_the_file_are_refused(self):
        huge = 64 << 30
        cases = {
            "zip_binbytes8": lambda p: _write_zip(p, _counted(pickle.BINBYTES8, huge), {}),
            "zip_binunicode8": lambda p: _write_zip(p, _counted(pickle.BINUNICODE8, huge), {}),
            "zip_bytearray8": lambda p: _write_zip(p, _counted(pickle.BYTEARRAY8, huge), {}),
            "legacy_binbytes8": lambda p: _write_legacy(
                p, _counted(pickle.BINBYTES8, huge), {}),
        }
        for name, write in cases.items():
            with self.subTest(name=name):
                path = write(self._path(f"{name}.pth"))
                self.assertRejected(path, "CheckpointFormatError",
                                    rf"declares {huge} bytes where only \d+ remain")

    def test_storage_sizes_beyond_the_data_are_refused(self):
        numel = 1 << 40
        tensor = _tensor((2,), (1,), numel=numel)
        state = _dumps({"w": tensor})
        with self.subTest(format="legacy"):
            path = _write_legacy(self._path("numel.pth"), state, {"0": (numel, _floats(1, 2))})
            self.assertRejected(path, "CheckpointFormatError",
                                f"storage 0 needs {numel * 4} bytes but only 8 remain")
        with self.subTest(format="zip"):
            path = _write_zip(self._path("numel.zip.pth"), state, {"0": _floats(1, 2)})
            self.assertRejected(path, "CheckpointFormatError",
                                f"storage 0 holds 8 bytes.*{numel} elements")

    def test_hostile_structures_are_format_errors(self):
        storage = {"0": (2, _floats(1, 2))}
        resized = _tensor((2,), (1,), numel=2, storage_state=(None, {"numel": 1 << 40}))
        cases = {  # name: (writes the file at a path, what the message must say)
            "deep_lists": (lambda p: _write_legacy(p, _deep_lists(100000), {}),
                           "RecursionError"),
            "deep_tuple_as_key": (lambda p: _write_legacy(p, _deep_tuple_key(1000000), {}),
                                  "nests tuples more than 100 deep"),
            "offset_not_an_int": (lambda p: _write_legacy(p, _dumps(
                {"w": _tensor((2,), (1,), offset=None, numel=2)}), storage),
                "offset is None, not a non-negative integer"),
            "size_of_strings": (lambda p: _write_legacy(p, _dumps(
                {"w": _tensor(("a", "b"), (1, 1), numel=2)}), storage),
                "size is \\('a', 'b'\\), not a tuple of non-negative integers"),
            "sys_info_a_list": (lambda p: _write_legacy(p, _dumps({}), {}, sys_info=[1, 2]),
                                "AttributeError: 'list' object has no attribute 'get'"),
            "build_on_a_storage": (lambda p: _write_zip(p, _dumps({"w": resized}),
                                                        {"0": _floats(1, 2)}),
                                   "sets the state of a _Storage"),
        }
        for name, (write, pattern) in cases.items():
            with self.subTest(name=name):
                self.assertRejected(write(self._path(f"{name}.pth")), "CheckpointFormatError",
                                    pattern)

    def test_shared_references_are_resolved_once(self):
        """Lists shared at each of 64 levels (2 ** 64 paths) and a list containing itself
        read in linear time, sharing kept."""
        doubling = _write_legacy(self._path("doubling.pth"), _doubling_lists(64), {})
        itself = _write_legacy(self._path("itself.pth"), b"\x80\x02" + pickle.EMPTY_LIST
                               + pickle.BINPUT + b"\x00" + pickle.BINGET + b"\x00"
                               + pickle.APPEND + pickle.STOP, {})
        for path in (doubling, itself):
            self.assertEqual(self.read_in_child(path),
                             (None, "the file was read without an error"))
        inner = torch_checkpoint.read_checkpoint(doubling)
        for _ in range(64):
            self.assertIs(inner[0], inner[1])
            inner = inner[0]
        self.assertEqual(inner, [])
        outer = torch_checkpoint.read_checkpoint(itself)
        self.assertIs(outer[0], outer)

    def test_truncated_or_damaged_zip_says_so(self):
        path = self._zip_state(self._path("whole.pth"), _tensor((4,), (1,)),
                               _floats(1, 2, 3, 4))
        with open(path, "rb") as f:
            whole = f.read()
        truncated = self._path("truncated.pth")
        with open(truncated, "wb") as f:
            f.write(whole[: len(whole) // 2])
        damaged = self._path("damaged.pth")
        at = whole.index(_floats(1, 2, 3, 4))
        with open(damaged, "wb") as f:
            f.write(whole[:at] + _floats(9, 9, 9, 9) + whole[at + 16:])
        for path in (truncated, damaged):
            with self.subTest(path=os.path.basename(path)):
                self.assertRejected(path, "CheckpointFormatError", "truncated or damaged zip")


class ToolErrorReportingTest(tf.test.TestCase):

    def test_refused_and_malformed_checkpoints_are_reported_not_raised(self):
        directory = self.get_temp_dir()
        refused = os.path.join(directory, "refused.pth")
        with open(refused, "wb") as f:
            f.write(_dumps(_Call(_Global("os", "system"), "true")))
        malformed = _write_legacy(os.path.join(directory, "malformed.pth"),
                                  _dumps({"w": _tensor((2,), (1,), offset=None)}),
                                  {"0": (2, _floats(1, 2))})
        tool = convert_command
        for path, pattern in ((refused, r"os\.system"), (malformed, "offset")):
            with self.subTest(path=os.path.basename(path)):
                output = os.path.join(tempfile.mkdtemp(dir=directory), "out.weights.h5")
                with self.assertLogs(level=logging.ERROR) as logs:
                    status = tool.main(["--arch", "resnet50_torch", "--checkpoint", path,
                                        "--output", output])
                self.assertEqual(status, 1)
                self.assertRegex(logs.output[-1], path + ".*" + pattern)
                self.assertFalse(os.path.exists(output))
