"""Whether a weights file fits a model, read from the file's metadata (h5py: shapes only,
no value loaded), and failed loads told in one line.

Keras' own shape error quotes the target variable with all its values (hundreds of lines
of arrays); :func:`mismatch` names the first layer that differs and the two shapes instead,
and :func:`one_line` strips those values from any other loading error.

Formats read: Keras 3 ``.weights.h5`` and ``.keras`` (layers matched by the names the file
records) and legacy ``.h5`` such as the keras.applications files (layers with weights
matched in order, as Keras' legacy loader does). For other files :func:`mismatch` says
nothing and the load itself decides.
"""
import contextlib
import re
import zipfile
from typing import TYPE_CHECKING

import h5py

if TYPE_CHECKING:
    import keras

_KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"
_VARIABLE_REPR = re.compile(r"<Variable path=([^,>]+)[^>]*>")
_KERAS_OBJECT_LIST = "List of objects that could not be loaded"


@contextlib.contextmanager
def _open_h5(path):
    """The h5py file of ``path`` (a .keras archive: its weights member), or None."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if _KERAS_ARCHIVE_WEIGHTS not in archive.namelist():
                yield None
                return
            with archive.open(_KERAS_ARCHIVE_WEIGHTS) as member, h5py.File(member, "r") as f:
                yield f
        return
    if not h5py.is_hdf5(path):
        yield None
        return
    with h5py.File(path, "r") as f:
        yield f


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _keras3_layers(f):
    """``[(layer name, [shape, ...])]`` of the top-level layers that record their name."""
    out = []
    for group in f["layers"].values():
        own = group.get("vars")
        if isinstance(own, h5py.Group) and "name" in own.attrs:
            out.append((_text(own.attrs["name"]),
                        [own[str(i)].shape for i in range(len(own))]))
    return out


def _legacy_layers(f):
    """``[(layer name, [shape, ...])]`` of the layers with weights, in the file's order."""
    group = f["model_weights"] if "model_weights" in f else f
    out = []
    for name in map(_text, group.attrs["layer_names"]):
        weight_names = [_text(w) for w in group[name].attrs.get("weight_names", [])]
        if weight_names:
            out.append((name, [group[name][w].shape for w in weight_names]))
    return out


def saved_layers(path: str) -> tuple[bool, list[tuple[str, list[tuple[int, ...]]]]] | None:
    """``(in_order, [(layer name, [variable shape, ...])])`` for the weights file at
    ``path``: ``in_order`` when its layers are matched to a model's by position (legacy
    .h5), else by name. None when the file is in none of the formats of the module
    docstring."""
    with _open_h5(path) as f:
        if f is None:
            return None
        if "layers" in f:
            layers = _keras3_layers(f)
            return (False, layers) if layers else None
        if "layer_names" in (f["model_weights"] if "model_weights" in f else f).attrs:
            return True, _legacy_layers(f)
    return None


def _differences(pairs):
    """``[(layer, variable, file shape)]`` of the variables whose saved shape differs."""
    out = []
    for layer, shapes in pairs:
        variables = layer.weights  # its own first, in the order they are saved
        if len(shapes) > len(variables):
            out.append((layer, None, len(shapes)))
            continue
        for variable, shape in zip(variables, shapes):
            if tuple(shape) != tuple(variable.shape):
                out.append((layer, variable, tuple(shape)))
                break
    return out


def mismatch(model: "keras.Model", path: str) -> str | None:
    """One line saying why the weights file at ``path`` cannot fill ``model``'s layers
    (the first differing layer with both shapes, and how many differ), or None when it fits
    or its format is not read here. Reads shapes only; works on a model whose variables
    have no values (built inside ``keras.StatelessScope``)."""
    saved = saved_layers(path)
    if saved is None:
        return None
    in_order, layers = saved
    mine = [layer for layer in model.layers if layer.weights]
    if in_order:
        if len(layers) != len(mine):
            return (f"the file has {len(layers)} layers with weights, the model "
                    f"{len(mine)}")
        pairs = [(layer, shapes) for layer, (_, shapes) in zip(mine, layers)]
    else:
        by_name = dict(layers)
        missing = [layer.name for layer in mine if layer.name not in by_name]
        if missing:
            return (f"the file has no weights for {len(missing)} of the model's {len(mine)} "
                    f"layers with weights, e.g. {missing[:3]}")
        pairs = [(layer, by_name[layer.name]) for layer in mine]
    differences = _differences(pairs)
    if not differences:
        return None
    layer, variable, saved_shape = differences[0]
    more = f" ({len(differences) - 1} more layers differ)" if len(differences) > 1 else ""
    if variable is None:
        return (f"layer '{layer.name}' has {saved_shape} variables in the file but "
                f"{len(layer.weights)} in the model{more}")
    return (f"layer '{layer.name}': {variable.path} has shape {saved_shape} in the file but "
            f"{tuple(variable.shape)} in the model{more}")


def one_line(error: BaseException, limit: int = 400) -> str:
    """The message of a failed ``load_weights`` on one line of at most ``limit`` characters:
    each quoted variable (whose repr holds all its values) replaced by its path, Keras'
    list of every failed object dropped."""
    text = _VARIABLE_REPR.sub(r"\1", str(error)).split(_KERAS_OBJECT_LIST)[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
