"""Units of a network: the stem and each residual or MBConv block, input to output.

A unit is the granularity at which the paper freezes layers (Figure 3: conv1, then one
bottleneck block at a time). Units are read from layer names, so they work on any model of
the supported families, loaded or built:

- keras.applications ResNets: ``conv1`` (layers ``conv1_*`` and ``pool1_*``), then
  ``conv{s}_block{b}`` (layers ``conv{s}_block{b}_*``);
- the package's models (small ResNet, torchvision-layout ResNet, EfficientNet-Lite0):
  ``stem``, ``stage{s}_block{b}`` or ``block{n}``, and ``top``, a layer belonging to a unit
  when its name starts with ``unit + "_"``.

Layers outside any unit (input, pooling, dropout, classifier) belong to the head side.
"""
import collections
import re
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import keras

_UNIT = re.compile(r"^(conv1|pool1|conv\d+_block\d+|stem|stage\d+_block\d+|block\d+|top)_")
_ALIASES = {"pool1": "conv1"}  # keras.applications' stem max-pool belongs to the stem


def unit_of(layer_name: str) -> str | None:
    """The unit a layer name belongs to, or None for layers outside every unit."""
    match = _UNIT.match(layer_name)
    if match is None:
        return None
    return _ALIASES.get(match.group(1), match.group(1))


def units(model: "keras.Model") -> "collections.OrderedDict[str, list[keras.layers.Layer]]":
    """``OrderedDict`` unit name -> list of layers, in the model's (topological) order."""
    found = collections.OrderedDict()
    for layer in model.layers:
        unit = unit_of(layer.name)
        if unit is not None:
            found.setdefault(unit, []).append(layer)
    if not found:
        raise ValueError(
            f"Model {model.name!r} has no layer named after a unit (e.g. 'conv2_block1_*', "
            "'stem_*', 'stage1_block1_*', 'block1_*'); units are defined for the "
            "keras.applications ResNets and the tftransfer models only.")
    return found


def unit_names(model: "keras.Model") -> list[str]:
    """Names of the units of ``model``, input to output."""
    return list(units(model))


def unit_layers(model: "keras.Model", names: str | Sequence[str]) -> "list[keras.layers.Layer]":
    """The layers of the units ``names`` (a name or a list of names) of ``model``."""
    if isinstance(names, str):
        names = [names]
    table = units(model)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"Unknown unit(s) {unknown} in model {model.name!r}; its units are "
                         f"{list(table)}.")
    return [layer for n in names for layer in table[n]]
