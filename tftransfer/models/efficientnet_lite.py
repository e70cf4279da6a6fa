"""EfficientNet-Lite0 (Tan & Le 2019; TensorFlow's mobile "Lite" variant) in Keras.

Lite differs from EfficientNet-B0 by: no squeeze-and-excitation, ReLU6 instead of swish,
and a stem (32 channels) and head (1280 channels) that are not rescaled. Layout:

    stem   3x3/2 conv 32, BN, ReLU6
    block1..block16   MBConv blocks from :data:`BLOCKS` (1x1 expansion conv + BN + ReLU6
           when the expansion ratio is not 1, kxk depthwise conv + BN + ReLU6, 1x1
           projection conv + BN, identity shortcut when stride 1 and widths equal)
    top    1x1 conv 1280, BN, ReLU6
    avg_pool (global average), dropout, predictions (dense, logits)

Convolutions use TensorFlow 'same' padding (for stride 2, the extra row/column of padding
goes at the bottom/right), have no bias, and every batch norm uses epsilon 1e-3, as in the
reference TensorFlow implementation and the PyTorch port whose ImageNet weights
:mod:`tftransfer.models.pretrained` converts. Every layer name starts with its unit name
(``stem``, ``block1`` ... ``block16``, ``top``) followed by ``_``.
"""
from typing import Sequence

import keras

BN_MOMENTUM = 0.9  # the authors' batch-norm moving-average momentum (docs/recipe.md)
BN_EPSILON = 1e-3
STEM_FILTERS = 32
TOP_FILTERS = 1280

# Input scaling the converted ImageNet weights expect: x / 127.5 - 1 (x in [0, 255], RGB),
# i.e. the TensorFlow reference's (x - 127) / 128 to within 0.4%.
PREPROCESSING = "tf"

# Stages of the EfficientNet-Lite0 paper table:
# (repeats, kernel size, first stride, expansion ratio, output channels).
BLOCKS = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
NUM_BLOCKS = sum(stage[0] for stage in BLOCKS)


def unit_names() -> list[str]:
    """Names of the freezable units, input to output: ``["stem", "block1", ..., "top"]``."""
    return ["stem"] + [f"block{i}" for i in range(1, NUM_BLOCKS + 1)] + ["top"]


def _block_specs():
    """Yields (kernel size, stride, expansion ratio, output channels) per MBConv block."""
    for repeats, kernel, stride, expand, filters in BLOCKS:
        for r in range(repeats):
            yield kernel, stride if r == 0 else 1, expand, filters


def _bn_relu6(x, name, relu=True):
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        name=name + "_bn")(x)
    if relu:
        x = keras.layers.ReLU(max_value=6.0, name=name + "_relu")(x)
    return x


def _conv1x1(x, filters, name):
    return keras.layers.Conv2D(filters, 1, padding="same", use_bias=False,
                               kernel_initializer="he_normal", name=name + "_conv")(x)


def _mbconv(x, kernel, stride, expand, filters, name):
    inputs = x
    if expand != 1:
        x = _bn_relu6(_conv1x1(x, x.shape[-1] * expand, name + "_expand"), name + "_expand")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                     depthwise_initializer="he_normal",
                                     name=name + "_dwconv")(x)
    x = _bn_relu6(x, name + "_dw")
    x = _bn_relu6(_conv1x1(x, filters, name + "_project"), name + "_project", relu=False)
    if stride == 1 and inputs.shape[-1] == filters:
        x = keras.layers.Add(name=name + "_add")([inputs, x])
    return x


def efficientnet_lite0(input_shape: Sequence[int] = (224, 224, 3), include_top: bool = True,
                       classes: int = 1000, dropout_rate: float = 0.2,
                       name: str = "efficientnet_lite0") -> keras.Model:
    """Builds EfficientNet-Lite0; returns a ``keras.Model`` from images to logits.

    Args:
      input_shape: (height, width, 3) of the preprocessed images (see :data:`PREPROCESSING`).
      include_top: add dropout and the dense classifier ``predictions``; without it the
        model outputs the 1280-d pooled features of ``avg_pool``.
      classes: width of ``predictions``.
      dropout_rate: dropout before ``predictions`` (training only).
      name: model name.
    """
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                            kernel_initializer="he_normal", name="stem_conv")(inputs)
    x = _bn_relu6(x, "stem")
    for i, spec in enumerate(_block_specs(), start=1):
        x = _mbconv(x, *spec, name=f"block{i}")
    x = _bn_relu6(_conv1x1(x, TOP_FILTERS, "top"), "top")
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = keras.layers.Dropout(dropout_rate, name="top_dropout")(outputs)
        outputs = keras.layers.Dense(classes, name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
