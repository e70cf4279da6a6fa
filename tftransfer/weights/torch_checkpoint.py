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
"""
import _compat_pickle
import collections
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

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


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle names a global outside :data:`ALLOWED_GLOBALS`."""


class CheckpointFormatError(ValueError):
    """The file is not a PyTorch checkpoint this reader understands."""


class _Storage:
    """A typed storage: ``dtype`` elements, filled in from the file's raw bytes."""

    __slots__ = ("dtype", "numel", "data")

    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = dtype, numel, None


class _StorageView:
    """Elements ``[offset, offset + numel)`` of a root storage (legacy format only)."""

    __slots__ = ("root", "offset", "numel")

    def __init__(self, root, offset, numel):
        self.root, self.offset, self.numel = root, offset, numel


class _TensorRef:
    """A tensor awaiting its storage's data: ``as_strided(storage, size, stride, offset)``."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self):
        storage, offset = self.storage, self.offset
        if isinstance(storage, _StorageView):
            storage, offset = storage.root, offset + storage.offset
        data = storage.data
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=data.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if offset < 0 or last >= data.size:
            raise CheckpointFormatError(
                f"A tensor of size {tuple(self.size)} and stride {tuple(self.stride)} at "
                f"offset {offset} lies outside its storage of {data.size} elements; the "
                "file is corrupt.")
        strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[offset:], self.size, strides)
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride):
    if not isinstance(storage, (_Storage, _StorageView)):
        raise CheckpointFormatError(
            f"A tensor rebuild got {type(storage).__name__} where a storage was expected.")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


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


def _text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS` and torch storage ids.

    ``storages`` maps a storage key to its :class:`_Storage`; it is filled while loading.
    """

    def __init__(self, file, storages):
        super().__init__(file, encoding="utf-8")
        self.storages = storages

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
        if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage":
            raise CheckpointFormatError(
                f"Unsupported persistent id {pid!r}: only tensor storages are supported "
                "(whole pickled modules are not; save model.state_dict() instead).")
        storage_class, key, _location, numel = pid[1:5]
        key = _text(key)
        if storage_class not in STORAGE_DTYPES:
            raise CheckpointFormatError(f"Unsupported storage type {storage_class!r}.")
        storage = self.storages.setdefault(
            key, _Storage(np.dtype(STORAGE_DTYPES[storage_class]), numel))
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return storage
        _view_key, offset, view_numel = view
        return _StorageView(storage, offset, view_numel)


def _resolve(obj):
    """Replaces every tensor placeholder in ``obj`` (nested containers) by its array."""
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        out = type(obj)((k, _resolve(v)) for k, v in obj.items())
        if hasattr(obj, "__dict__"):  # e.g. a state dict's ``_metadata`` attribute.
            out.__dict__.update(obj.__dict__)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _endianness(little):
    return "<" if little else ">"


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise CheckpointFormatError(
                f"{path} is a zip archive but not a torch.save checkpoint (expected one "
                f"'<name>/data.pkl', found {pickles}).")
        prefix = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        order = "<"
        if prefix + "byteorder" in names:
            order = _endianness(archive.read(prefix + "byteorder").strip() == b"little")
        storages = {}
        with archive.open(pickles[0]) as f:
            obj = RestrictedUnpickler(f, storages).load()
        for key, storage in storages.items():
            if f"{prefix}data/{key}" not in names:
                raise CheckpointFormatError(f"{path} lacks the data of storage {key}.")
            raw = archive.read(f"{prefix}data/{key}")
            storage.data = np.frombuffer(raw, storage.dtype.newbyteorder(order),
                                         count=storage.numel).astype(storage.dtype)
    return obj


def _read_legacy(path):
    with open(path, "rb") as f:
        try:
            magic = RestrictedUnpickler(f, {}).load()
        except UnsafeCheckpointError:
            raise
        except Exception:  # noqa: BLE001 - unreadable as a pickle: not this format.
            magic = None
        if magic != LEGACY_MAGIC_NUMBER:
            raise CheckpointFormatError(
                f"{path} is not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) "
                "nor a legacy torch.save file (magic number missing). Tar-format files of "
                "torch < 0.1.10 are not supported; re-save them with a newer torch.")
        version = RestrictedUnpickler(f, {}).load()
        if version != LEGACY_PROTOCOL_VERSION:
            raise CheckpointFormatError(
                f"{path}: unsupported legacy protocol version {version!r} "
                f"(expected {LEGACY_PROTOCOL_VERSION}).")
        sys_info = RestrictedUnpickler(f, {}).load()
        order = _endianness(sys_info.get("little_endian", True))
        storages = {}
        obj = RestrictedUnpickler(f, storages).load()
        keys = [_text(k) for k in RestrictedUnpickler(f, {}).load()]
        if sorted(keys) != sorted(storages):
            raise CheckpointFormatError(
                f"{path}: the storages listed after the pickle do not match those it uses.")
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack(order + "q", f.read(8))
            if numel != storage.numel:
                raise CheckpointFormatError(
                    f"{path}: storage {key} has {numel} elements on disk but "
                    f"{storage.numel} in its pickled header; the file is corrupt.")
            raw = f.read(numel * storage.dtype.itemsize)
            if len(raw) != numel * storage.dtype.itemsize:
                raise CheckpointFormatError(f"{path} is truncated (storage {key}).")
            storage.data = np.frombuffer(raw, storage.dtype.newbyteorder(order)).astype(
                storage.dtype)
    return obj


def read_checkpoint(path):
    """Returns the object ``torch.save`` wrote to ``path``, with tensors as NumPy arrays.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      UnsafeCheckpointError: the pickle names a global outside :data:`ALLOWED_GLOBALS`.
      CheckpointFormatError: the file is neither a zip nor a legacy torch checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No PyTorch checkpoint at {path!r}.")
    obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    return _resolve(obj)


def read_state_dict(path):
    """Reads a state dict: ``OrderedDict`` of parameter name -> ``np.ndarray``.

    Unwraps a ``{"state_dict": ...}`` training checkpoint and strips the ``module.`` prefix
    that ``nn.DataParallel`` adds to every name.
    """
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointFormatError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to "
            "tensors, possibly under the key 'state_dict').")
    not_arrays = [k for k, v in obj.items() if not isinstance(v, np.ndarray)]
    if not_arrays:
        raise CheckpointFormatError(
            f"{path}: entries {not_arrays[:5]} are not tensors; expected a state dict of "
            "tensors.")
    prefix = "module."
    return collections.OrderedDict(
        (k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in obj.items())
