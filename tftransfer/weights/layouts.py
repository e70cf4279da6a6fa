"""Name mappings from Keras layers to PyTorch state-dict prefixes, one table per layout.

A table maps a Keras layer-name pattern to a PyTorch module-name template. In a pattern,
``{x}`` matches a decimal number and binds it to ``x``; in a template, ``{x}`` is that number
and ``{x-1}`` (or any ``{x+k}``/``{x-k}``) shifts it, e.g. 1-based Keras ``block3`` to the
0-based PyTorch ``_blocks.2``. How each layer's weights are reshaped is decided by the Keras
layer type (see :mod:`tftransfer.weights.convert`), so the tables hold names only.
"""
import functools
import re

# tftransfer.models.efficientnet_lite <- lukemelas-style EfficientNet-Lite PyTorch port.
EFFICIENTNET_LITE = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "block{n}_expand_conv": "_blocks.{n-1}._expand_conv",
    "block{n}_expand_bn": "_blocks.{n-1}._bn0",
    "block{n}_dwconv": "_blocks.{n-1}._depthwise_conv",
    "block{n}_dw_bn": "_blocks.{n-1}._bn1",
    "block{n}_project_conv": "_blocks.{n-1}._project_conv",
    "block{n}_project_bn": "_blocks.{n-1}._bn2",
    "top_conv": "_conv_head",
    "top_bn": "_bn1",
    "predictions": "_fc",
}

# tftransfer.models.resnet_torch <- torchvision ResNet (also the Places365 releases).
RESNET_TORCHVISION = {
    "stem_conv": "conv1",
    "stem_bn": "bn1",
    "stage{s}_block{b}_0_conv": "layer{s}.{b-1}.downsample.0",
    "stage{s}_block{b}_0_bn": "layer{s}.{b-1}.downsample.1",
    "stage{s}_block{b}_1_conv": "layer{s}.{b-1}.conv1",
    "stage{s}_block{b}_1_bn": "layer{s}.{b-1}.bn1",
    "stage{s}_block{b}_2_conv": "layer{s}.{b-1}.conv2",
    "stage{s}_block{b}_2_bn": "layer{s}.{b-1}.bn2",
    "stage{s}_block{b}_3_conv": "layer{s}.{b-1}.conv3",
    "stage{s}_block{b}_3_bn": "layer{s}.{b-1}.bn3",
    "predictions": "fc",
}

_FIELD = re.compile(r"\{(\w+)([+-]\d+)?\}")


@functools.lru_cache(maxsize=None)
def _pattern_regex(pattern):
    """``"block{n}_dwconv"`` -> the regex ``block(?P<n>\\d+)_dwconv``, anchored at both ends."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>\\d+)", re.escape(pattern)) + r"\Z")


def torch_prefix(layout: str, keras_name: str) -> str | None:
    """PyTorch module name for the Keras layer ``keras_name`` in ``layout``; None if unmapped.

    Raises:
      ValueError: more than one pattern of the table matches ``keras_name``.
    """
    found = []
    for pattern, template in layout.items():
        match = _pattern_regex(pattern).match(keras_name)
        if match:
            fields = {k: int(v) for k, v in match.groupdict().items()}
            found.append(_FIELD.sub(lambda m: str(fields[m[1]] + int(m[2] or 0)), template))
    if len(found) > 1:
        raise ValueError(f"Layer {keras_name!r} matches several layout entries: {found}.")
    return found[0] if found else None
