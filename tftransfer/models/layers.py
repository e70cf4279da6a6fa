"""The convolution block the ResNets of this package share: conv -> batch norm -> ReLU."""
from typing import Any

import keras

BN_MOMENTUM = 0.9  # the authors' batch-norm moving-average momentum (docs/recipe.md)
BN_EPSILON = 1e-5  # PyTorch's (keras.applications uses 1.001e-5)


def conv_bn(x: Any, filters: int, kernel: int, strides: int, name: str, relu: bool,
            symmetric_pad: bool = False) -> Any:
    """``name_conv`` (no bias, He-normal) -> ``name_bn`` -> ``name_relu`` (when ``relu``).

    Padding is TF's 'same' by default; with ``symmetric_pad`` it is PyTorch's
    ``padding=kernel // 2``: a ``name_pad`` ZeroPadding2D layer, then a 'valid' convolution.
    """
    pad = kernel // 2 if symmetric_pad else 0
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=name + "_pad")(x)
    x = keras.layers.Conv2D(filters, kernel, strides=strides,
                            padding="valid" if symmetric_pad else "same", use_bias=False,
                            kernel_initializer="he_normal", name=name + "_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        name=name + "_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=name + "_relu")(x)
    return x
