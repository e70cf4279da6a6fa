"""ResNet-50/101/152 in the torchvision layout, so that PyTorch weights (e.g. Places365) fit.

torchvision's ResNet ("v1.5") differs from ``keras.applications.ResNet50`` ("v1") in three
ways that change the outputs of converted weights, and this module follows torchvision:

* a bottleneck block strides in its 3x3 convolution, not in the first 1x1;
* padding is symmetric (PyTorch ``padding=k // 2``), where TF 'same' padding with stride 2
  puts the extra row/column at the bottom/right only: explicit ``ZeroPadding2D`` layers
  followed by 'valid' convolutions / pooling reproduce PyTorch (zero padding before the max
  pool equals PyTorch's -inf padding because its inputs are ReLU outputs, >= 0);
* batch-norm epsilon 1e-5 (keras.applications uses 1.001e-5); convolutions have no bias.

Layers are named ``<unit>_...`` with units ``stem`` and ``stage{s}_block{b}`` (1-based; the
shortcut projection is ``_0_``, the three convolutions ``_1_``, ``_2_``, ``_3_``), then
``avg_pool`` and ``predictions`` (logits).
"""
from typing import Sequence

import keras

from tftransfer.models.layers import conv_bn

# Input scaling of torchvision weights: x / 255 (RGB), minus the ImageNet mean
# (0.485, 0.456, 0.406), divided by the standard deviation (0.229, 0.224, 0.225).
PREPROCESSING = "torch"

STAGE_FILTERS = (64, 128, 256, 512)  # bottleneck widths; outputs are 4x wider
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _blocks_per_stage(depth):
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth {depth!r} is not supported; choose one of "
                         f"{sorted(DEPTHS)}.")
    return DEPTHS[depth]


def unit_names(depth: int = 50) -> list[str]:
    """Names of the freezable units, input to output: ``["stem", "stage1_block1", ...]``."""
    return ["stem"] + [f"stage{s}_block{b}"
                       for s, n in enumerate(_blocks_per_stage(depth), start=1)
                       for b in range(1, n + 1)]


def _bottleneck(x, filters, stride, name):
    shortcut = x
    if stride != 1 or x.shape[-1] != 4 * filters:
        shortcut = conv_bn(x, 4 * filters, 1, stride, name + "_0", relu=False,
                           symmetric_pad=True)
    y = conv_bn(x, filters, 1, 1, name + "_1", relu=True, symmetric_pad=True)
    y = conv_bn(y, filters, 3, stride, name + "_2", relu=True, symmetric_pad=True)
    y = conv_bn(y, 4 * filters, 1, 1, name + "_3", relu=False, symmetric_pad=True)
    y = keras.layers.Add(name=name + "_add")([shortcut, y])
    return keras.layers.ReLU(name=name + "_out")(y)


def resnet_torch(depth: int = 50, input_shape: Sequence[int] = (224, 224, 3),
                 include_top: bool = True, classes: int = 1000,
                 name: str | None = None) -> keras.Model:
    """Builds a torchvision-layout ResNet; returns a ``keras.Model`` from images to logits.

    Args:
      depth: 50, 101 or 152.
      input_shape: (height, width, 3) of the preprocessed images (see :data:`PREPROCESSING`).
      include_top: add the dense classifier ``predictions``; without it the model outputs
        the 2048-d pooled features of ``avg_pool``.
      classes: width of ``predictions`` (1000 for ImageNet, 365 for Places365).
      name: model name, ``resnet{depth}_torch`` by default.
    """
    blocks = _blocks_per_stage(depth)
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, 64, 7, 2, "stem", relu=True, symmetric_pad=True)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for s, (filters, n) in enumerate(zip(STAGE_FILTERS, blocks), start=1):
        for b in range(1, n + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            x = _bottleneck(x, filters, stride, f"stage{s}_block{b}")
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        outputs = keras.layers.Dense(classes, name="predictions")(outputs)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}_torch")
