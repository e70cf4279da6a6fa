"""Reads PyTorch checkpoints into NumPy arrays without torch and without running pickled code.

Two on-disk formats are understood:

* zip (``torch.save`` since torch 1.6): a zip archive holding ``<name>/data.pkl`` (the
  pickled object) and one raw little- or big-endian file ``<name>/data/<key>`` per storage;
* legacy (older ``.pth`` / ``.pth.tar``, e.g. the 2017 Places365 releases): four pickles in a
  row (magic number, protocol version, system info, the object), a pickled list of storage
  keys, then for every key an int64 element count followed by the raw elements.

In both, a tensor is pickled as a call ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)`` whose ``storage`` is a persistent id ``("storage", <dtype class>, key,
location, numel[, view])``. :class:`RestrictedUnpickler` resolves only the globals a state
dict needs (:data:`ALLOWED_GLOBALS`) to local stand-ins and refuses every other global with
:class:`UnsafeCheckpointError`, so nothing named by the file is ever imported or called.
Tensors come back as NumPy arrays with the same dtype, shape and values as
``torch.load(path, weights_only=True)`` gives (bfloat16 as ``ml_dtypes.bfloat16``); the
device a tensor was saved from (``cuda:0``...) is ignored.

The file is treated as hostile, and reading it is memory-safe:

* every length the file declares (a pickle's BINBYTES8/BINUNICODE8/BYTEARRAY8/LONG4/FRAME
  lengths, a legacy storage's element count, a storage's size against its zip entry) is
  checked against the bytes actually there before anything is allocated for it;
* every tensor view is checked against its storage: offset, sizes and strides must be
  non-negative integers and the last element inside the storage. Stride 0 (an expanded
  tensor) and overlapping strides are legal in torch and read as torch reads them;
* the data a read allocates (inflated zip entries, storages, arrays) is bounded by a byte
  budget, :data:`MAX_EXPANSION` times the file's size plus :data:`EXPANSION_ALLOWANCE`
  (``max_bytes=`` overrides it), so a deflate bomb or a huge broadcast view is refused;
* any malformed structure (wrong types, cycles, nesting, truncation) raises one
  :class:`CheckpointFormatError` naming the file and saying what is wrong.

Left unbounded: the Python objects the pickle itself builds (tens of bytes per pickle byte).
"""
import _compat_pickle
import collections
import io
import math
import os
import pickle
import reprlib
import struct
import zipfile
import zlib
from typing import Any, Dict, Optional

import ml_dtypes
import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
ZIP_MAGIC = b"PK\x03\x04"  # a local file header: how torch.load recognises the zip format
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# Default byte budget of a read: MAX_EXPANSION bytes of data per byte of file, plus
# EXPANSION_ALLOWANCE. A state dict needs about 2: its storages and the arrays copied out.
MAX_EXPANSION = 8
EXPANSION_ALLOWANCE = 16 << 20
# Deepest tuple nesting a pickle may build; hashing a deeper one could overflow the C stack.
MAX_TUPLE_DEPTH = 100
# What a malformed or hostile file can make the reader's Python and NumPy code raise.
MALFORMED_ERRORS = (ArithmeticError, AttributeError, EOFError, LookupError, MemoryError,
                    RuntimeError, TypeError, ValueError, struct.error, zlib.error,
                    pickle.UnpicklingError)

# Storage class name (``torch.FloatStorage``, ``torch.cuda.FloatStorage``) -> element dtype.
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}

_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 80


class UnsafeCheckpointError(pickle.UnpicklingError):
    """Reading the checkpoint could run code (its pickle names a global outside
    :data:`ALLOWED_GLOBALS`) or would allocate far more memory than its size warrants."""


class CheckpointFormatError(ValueError):
    """The file is not a PyTorch checkpoint this reader understands, or is damaged."""


class _Budget:
    """The bytes of data a read may still allocate (see :func:`read_checkpoint`)."""

    def __init__(self, limit, file_size):
        self.limit, self.left, self.file_size = limit, limit, file_size

    def take(self, nbytes, what):
        """Charges ``nbytes`` for ``what``; UnsafeCheckpointError if over the budget."""
        if nbytes > self.left:
            raise UnsafeCheckpointError(
                f"{what} needs {nbytes} bytes, beyond the {self.limit} bytes a read of this "
                f"{self.file_size}-byte file may allocate ({MAX_EXPANSION} x its size + "
                f"{EXPANSION_ALLOWANCE >> 20} MiB): it looks like a zip bomb, or tensors "
                "viewing their storage many times over (stride 0 or overlapping strides). "
                "If you trust the file, pass a larger max_bytes to read_checkpoint.")
        self.left -= nbytes


def _non_negative_int(value, what):
    """Returns ``value`` if it is a non-negative int; CheckpointFormatError otherwise."""
    if not isinstance(value, int) or value < 0:
        raise CheckpointFormatError(
            f"{what} is {_short_repr.repr(value)}, not a non-negative integer; torch writes "
            "nothing else there, so the file is corrupt or crafted.")
    return value


def _non_negative_ints(values, what):
    """Returns ``values`` as a tuple of non-negative ints; CheckpointFormatError otherwise."""
    if not isinstance(values, (tuple, list)) or not all(
            isinstance(v, int) and v >= 0 for v in values):
        raise CheckpointFormatError(
            f"{what} is {_short_repr.repr(values)}, not a tuple of non-negative integers; "
            "torch writes nothing else there, so the file is corrupt or crafted.")
    return tuple(values)


def _text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


class _Storage:
    """A typed storage of ``numel`` elements, filled in from the file's raw bytes."""

    __slots__ = ("key", "dtype", "numel", "data")

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel, self.data = key, dtype, numel, None

    def fill(self, raw, order, budget):
        """Sets ``data`` to the first ``numel`` elements of ``raw`` (byte order ``order``).

        Raises CheckpointFormatError if ``raw`` is shorter than the declared elements.
        """
        nbytes = self.numel * self.dtype.itemsize
        if len(raw) < nbytes:
            raise CheckpointFormatError(
                f"storage {self.key} holds {len(raw)} bytes but is declared with {self.numel} "
                f"elements ({nbytes} bytes); the file is truncated or corrupt.")
        data = np.frombuffer(raw, self.dtype.newbyteorder(order), count=self.numel)
        if data.dtype != self.dtype:  # saved on a machine of the other byte order
            budget.take(nbytes, f"byte-swapping storage {self.key}")
            data = data.astype(self.dtype)
        self.data = data

    def array(self):
        return self.data


class _StorageView:
    """Elements ``[offset, offset + numel)`` of a root storage (legacy format only)."""

    __slots__ = ("root", "offset", "numel")

    def __init__(self, root, offset, numel):
        self.root, self.offset, self.numel = root, offset, numel

    def array(self):
        return self.root.data[self.offset:self.offset + self.numel]


class _TensorRef:
    """A tensor awaiting its storage's data: ``as_strided(storage, size, stride, offset)``.

    The view is checked on construction: it lies inside its storage's ``numel`` elements,
    which the storage's data is later checked to hold.
    """

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, (_Storage, _StorageView)):
            raise CheckpointFormatError(
                f"a tensor rebuild got a {type(storage).__name__} where a storage was "
                "expected.")
        offset = _non_negative_int(offset, "a tensor's storage offset")
        size = _non_negative_ints(size, "a tensor's size")
        stride = _non_negative_ints(stride, "a tensor's stride")
        if len(size) != len(stride):
            raise CheckpointFormatError(
                f"a tensor has size {size} but stride {stride}: one stride per dimension "
                "is needed.")
        stride = tuple(s if n > 1 else 0 for n, s in zip(size, stride))  # unused otherwise
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if 0 not in size and last >= storage.numel:
            raise CheckpointFormatError(
                f"a tensor of size {size} and stride {stride} at offset {offset} lies "
                f"outside its storage of {storage.numel} elements; the file is corrupt.")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self, budget):
        """Copies the view out of its storage's data, charging its bytes to ``budget``."""
        data = self.storage.array()
        if 0 in self.size:
            return np.zeros(self.size, dtype=data.dtype)
        budget.take(math.prod(self.size) * data.itemsize,
                    f"a tensor of size {self.size} and stride {self.stride}")
        strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.size, strides)
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata  # autograd state: irrelevant to values.
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    del requires_grad, backward_hooks, state
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
# Storage classes are markers of an element type; they stand for themselves by name.
ALLOWED_GLOBALS.update({(module, name): name for module in ("torch", "torch.cuda")
                        for name in STORAGE_DTYPES})


class _BoundedReader:
    """Binary file over ``file`` that refuses to read past offset ``end``.

    ``read(n)`` raises CheckpointFormatError when ``n`` exceeds the bytes left, so a length
    a pickle declares is checked against the file before anything is allocated for it.
    """

    def __init__(self, file, end):
        self.file, self.end = file, end

    def read(self, n):
        left = self.end - self.file.tell()
        if n > left:
            raise CheckpointFormatError(
                f"the pickle declares {n} bytes where only {left} remain; the file is "
                "truncated or corrupt.")
        return self.file.read(n)

    def readline(self):
        return self.file.readline(max(self.end - self.file.tell(), 0))


def _checking_depth(load):
    """Wraps the unpickler's ``load`` of a tuple or frozenset to check its nesting depth."""
    def load_and_check(self):
        load(self)
        self.check_depth(self.stack[-1])
    return load_and_check


class RestrictedUnpickler(pickle._Unpickler):  # pylint: disable=protected-access
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS` and torch storage ids.

    It is the pure-Python unpickler, whose every read goes through a
    :class:`_BoundedReader` over ``file`` up to offset ``end`` (the C one allocates declared
    lengths and memo indices before reading), with BUILD allowed only for an OrderedDict's
    attributes (a state dict's ``_metadata``) and tuples nested at most
    :data:`MAX_TUPLE_DEPTH` deep. ``storages`` maps a storage key to its :class:`_Storage`;
    it is filled while loading.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # pylint: disable=protected-access

    def __init__(self, file, storages, end):
        super().__init__(_BoundedReader(file, end), encoding="utf-8")
        self.storages = storages
        self.depths = {}  # id(tuple or frozenset) -> its nesting depth
        self.nested = []  # keeps them alive, so that the ids stay theirs

    def find_class(self, module, name):
        # Python 2 names, as protocol-2 pickles spell them ('__builtin__.eval').
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"Refusing to load the global '{module}.{name}': a PyTorch state dict only "
                "needs OrderedDict, tensor rebuilds and storages, and anything else could run "
                "code. If the checkpoint pickles a whole model or other objects, re-save its "
                "state dict with torch.save(model.state_dict(), path) in a trusted "
                "environment.") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and _text(pid[0]) == "storage"):
            raise CheckpointFormatError(
                f"unsupported persistent id {_short_repr.repr(pid)}: only tensor storages "
                "are supported (whole pickled modules are not; save model.state_dict() "
                "instead).")
        storage_class, key, _location, numel = pid[1:5]
        key = _text(key)
        if not isinstance(storage_class, str) or storage_class not in STORAGE_DTYPES:
            raise CheckpointFormatError(
                f"unsupported storage type {_short_repr.repr(storage_class)}.")
        if not isinstance(key, str):
            raise CheckpointFormatError(f"storage key {_short_repr.repr(key)} is not text.")
        dtype = np.dtype(STORAGE_DTYPES[storage_class])
        numel = _non_negative_int(numel, f"the element count of storage {key}")
        storage = self.storages.setdefault(key, _Storage(key, dtype, numel))
        if (storage.dtype, storage.numel) != (dtype, numel):
            raise CheckpointFormatError(
                f"storage {key} is declared both as {storage.numel} x {storage.dtype} and as "
                f"{numel} x {dtype}.")
        return storage if len(pid) == 5 or pid[5] is None else self._view(storage, pid[5])

    @staticmethod
    def _view(storage, view):
        """The legacy view ``(view_key, offset, numel)`` of ``storage``, checked to fit."""
        if not isinstance(view, tuple) or len(view) != 3:
            raise CheckpointFormatError(f"storage view {_short_repr.repr(view)} is not "
                                        "(key, offset, numel).")
        offset = _non_negative_int(view[1], f"the offset of a view of storage {storage.key}")
        numel = _non_negative_int(view[2], f"the size of a view of storage {storage.key}")
        if offset + numel > storage.numel:
            raise CheckpointFormatError(
                f"a view [{offset}, {offset + numel}) of storage {storage.key} exceeds its "
                f"{storage.numel} elements.")
        return _StorageView(storage, offset, numel)

    def check_depth(self, container):
        """Records how deeply tuples/frozensets nest in ``container``; refuses too deep."""
        depth = 1 + max((self.depths.get(id(item), 0) for item in container), default=0)
        if depth > MAX_TUPLE_DEPTH:
            raise CheckpointFormatError(
                f"the pickle nests tuples more than {MAX_TUPLE_DEPTH} deep; no checkpoint "
                "does, so the file is crafted.")
        self.depths[id(container)] = depth
        self.nested.append(container)

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if not (isinstance(inst, collections.OrderedDict) and isinstance(state, dict)
                and all(isinstance(k, str) and not hasattr(inst, k) for k in state)):
            raise CheckpointFormatError(
                f"the pickle sets the state of a {type(inst).__name__} (BUILD with a "
                f"{type(state).__name__}); a state dict only sets new attributes of an "
                "OrderedDict (its _metadata).")
        inst.__dict__.update(state)

    def load_bytearray8(self):
        (length,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(length)))  # read first: the length is checked

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
    for _opcode in (pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3,
                    pickle.FROZENSET):
        dispatch[_opcode[0]] = _checking_depth(dispatch[_opcode[0]])
    del _opcode


def _resolve(obj, budget, done):
    """Replaces every tensor placeholder in ``obj`` (nested containers) by its array.

    ``done`` maps ``id`` of an object already resolved to its result, so an object the
    pickle references many times is resolved once (arrays are built and charged to
    ``budget`` once; shared lists and dicts stay shared, cycles through them are kept).
    """
    if id(obj) in done:
        return done[id(obj)]
    if isinstance(obj, _TensorRef):
        out = obj.to_numpy(budget)
    elif isinstance(obj, dict):
        out = done[id(obj)] = type(obj)()
        for key, value in dict.items(obj):
            out[key] = _resolve(value, budget, done)
        if hasattr(obj, "__dict__"):  # e.g. a state dict's ``_metadata`` attribute.
            out.__dict__.update(obj.__dict__)
    elif isinstance(obj, list):
        out = done[id(obj)] = []
        out.extend(_resolve(value, budget, done) for value in obj)
    elif isinstance(obj, tuple):
        out = tuple(_resolve(value, budget, done) for value in obj)
    else:
        return obj
    done[id(obj)] = out
    return out


def _endianness(little):
    return "<" if little else ">"


def _read_entry(archive, name, budget):
    """Returns zip entry ``name``, charging its declared size to ``budget`` beforehand."""
    info = archive.getinfo(name)
    if info.compress_type not in ZIP_METHODS:
        raise CheckpointFormatError(
            f"zip entry {name} uses compression method {info.compress_type}; only "
            f"{' and '.join(ZIP_METHODS.values())} entries (what torch.save and zip tools "
            "write) are read.")
    budget.take(info.file_size, f"zip entry {name}")
    return archive.read(info)


def _read_zip(path, budget):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise CheckpointFormatError(
                "a zip archive but not a torch.save checkpoint (expected one "
                f"'<name>/data.pkl', found {_short_repr.repr(pickles)}).")
        prefix = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        order = "<"
        if prefix + "byteorder" in names:
            byteorder = _read_entry(archive, prefix + "byteorder", budget)
            order = _endianness(byteorder.strip() == b"little")
        raw = _read_entry(archive, pickles[0], budget)
        storages = {}
        obj = RestrictedUnpickler(io.BytesIO(raw), storages, len(raw)).load()
        for key, storage in storages.items():
            if f"{prefix}data/{key}" not in names:
                raise CheckpointFormatError(f"the data of storage {key} is missing.")
            storage.fill(_read_entry(archive, f"{prefix}data/{key}", budget), order, budget)
    return obj


def _read_exactly(f, nbytes, end, what):
    """Reads ``nbytes`` from ``f`` after checking that many are left before ``end``."""
    left = end - f.tell()
    if nbytes > left:
        raise CheckpointFormatError(
            f"{what} needs {nbytes} bytes but only {left} remain; the file is truncated or "
            "corrupt.")
    return f.read(nbytes)


def _read_legacy_magic(f, end):
    try:
        magic = RestrictedUnpickler(f, {}, end).load()
    except UnsafeCheckpointError:
        raise
    except Exception:  # noqa: BLE001 - unreadable as a pickle: not this format.
        magic = None
    if magic != LEGACY_MAGIC_NUMBER:
        raise CheckpointFormatError(
            "not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) nor a legacy "
            "torch.save file (magic number missing). Tar-format files of torch < 0.1.10 are "
            "not supported; re-save them with a newer torch.")


def _read_legacy(path, budget):
    end = os.path.getsize(path)
    with open(path, "rb") as f:
        _read_legacy_magic(f, end)
        version = RestrictedUnpickler(f, {}, end).load()
        if version != LEGACY_PROTOCOL_VERSION:
            raise CheckpointFormatError(
                f"unsupported legacy protocol version {_short_repr.repr(version)} "
                f"(expected {LEGACY_PROTOCOL_VERSION}).")
        sys_info = RestrictedUnpickler(f, {}, end).load()
        order = _endianness(sys_info.get("little_endian", True))
        storages = {}
        obj = RestrictedUnpickler(f, storages, end).load()
        keys = [_text(k) for k in RestrictedUnpickler(f, {}, end).load()]
        if sorted(keys) != sorted(storages):
            raise CheckpointFormatError(
                "the storages listed after the pickle do not match those it uses.")
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack(order + "q",
                                     _read_exactly(f, 8, end, f"storage {key}'s size"))
            if numel != storage.numel:
                raise CheckpointFormatError(
                    f"storage {key} has {numel} elements on disk but {storage.numel} in its "
                    "pickled header; the file is corrupt.")
            nbytes = numel * storage.dtype.itemsize
            raw = _read_exactly(f, nbytes, end, f"storage {key}")
            budget.take(nbytes, f"storage {key}")
            storage.fill(raw, order, budget)
    return obj


def _is_zip(path):
    with open(path, "rb") as f:
        return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC


def _description(error):
    """``error``'s class and (shortened) message, even if its message cannot be built."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - e.g. a KeyError of a key too deep to repr
        message = ""
    return f"{type(error).__name__}: {_short_repr.repr(message)[1:-1]}"


def read_checkpoint(path: "os.PathLike | str", *, max_bytes: Optional[int] = None) -> Any:
    """Returns the object ``torch.save`` wrote to ``path``, with tensors as NumPy arrays.

    Args:
      path: the checkpoint file.
      max_bytes: the most bytes of data the read may allocate (inflated zip entries,
        storages, arrays together); by default :data:`MAX_EXPANSION` times the file's size
        plus :data:`EXPANSION_ALLOWANCE`.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      UnsafeCheckpointError: the pickle names a global outside :data:`ALLOWED_GLOBALS`, or
        the data would exceed ``max_bytes``.
      CheckpointFormatError: the file is neither a zip nor a legacy torch checkpoint, or it
        is truncated, damaged or malformed in any way.
      Either error's message starts with ``path`` and says what is wrong.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No PyTorch checkpoint at {path!r}.")
    size = os.path.getsize(path)
    budget = _Budget(MAX_EXPANSION * size + EXPANSION_ALLOWANCE if max_bytes is None
                     else max_bytes, size)
    try:
        obj = _read_zip(path, budget) if _is_zip(path) else _read_legacy(path, budget)
        return _resolve(obj, budget, {})
    except (CheckpointFormatError, UnsafeCheckpointError) as error:
        raise type(error)(f"{path}: {error}") from None
    except zipfile.BadZipFile as error:
        raise CheckpointFormatError(
            f"{path} is a truncated or damaged zip archive ({error}); copy or download it "
            "again.") from error
    except MALFORMED_ERRORS as error:
        raise CheckpointFormatError(
            f"{path} is a malformed checkpoint ({_description(error)}): it is damaged, or "
            "was not written by torch.save.") from error


def read_state_dict(path: "os.PathLike | str", *,
                    max_bytes: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Reads a state dict: ``OrderedDict`` of parameter name -> ``np.ndarray``.

    Unwraps a ``{"state_dict": ...}`` training checkpoint and strips the ``module.`` prefix
    that ``nn.DataParallel`` adds to every name. Raises as :func:`read_checkpoint` does, and
    CheckpointFormatError if the object is not a mapping of string names to tensors.
    """
    obj = read_checkpoint(path, max_bytes=max_bytes)
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointFormatError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to "
            "tensors, possibly under the key 'state_dict').")
    not_arrays = [k for k, v in obj.items() if not isinstance(v, np.ndarray)]
    if not_arrays:
        raise CheckpointFormatError(
            f"{path}: entries {_short_repr.repr(not_arrays)} are not tensors; expected a "
            "state dict of tensors.")
    not_names = [k for k in obj if not isinstance(k, str)]
    if not_names:
        raise CheckpointFormatError(
            f"{path}: keys {_short_repr.repr(not_names)} are not parameter names (strings).")
    prefix = "module."
    return collections.OrderedDict(
        (k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in obj.items())
