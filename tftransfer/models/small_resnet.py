"""A small CIFAR-style ResNet (He et al. 2016, Section 4.2) for CPU-scale experiments.

Layout: a 3x3 stem convolution, then ``len(widths)`` stages of ``blocks_per_stage`` basic
residual blocks (two 3x3 convolutions with batch norm; the first block of every stage but the
first halves the resolution, with a 1x1 projection shortcut when the shape changes), global
average pooling (``avg_pool``) and a dense classifier (``predictions``) that outputs logits.

Every layer name starts with the name of its *unit*: ``stem``, then ``stage{s}_block{b}``
(1-based), so a unit, the granularity at which the paper freezes layers (Figure 3), is the
set of layers whose name starts with ``unit + "_"``. :func:`unit_names` lists them in order.
"""
from typing import Sequence

import keras

from tftransfer.models.layers import conv_bn



def unit_names(widths: Sequence[int] = (16, 32, 64), blocks_per_stage: int = 1) -> list[str]:
    """Names of the freezable units, input to output: ``["stem", "stage1_block1", ...]``."""
    return ["stem"] + [f"stage{s}_block{b}" for s in range(1, len(widths) + 1)
                       for b in range(1, blocks_per_stage + 1)]


def _basic_block(x, filters, strides, name):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, name + "_shortcut", relu=False)
    y = conv_bn(x, filters, 3, strides, name + "_1", relu=True)
    y = conv_bn(y, filters, 3, 1, name + "_2", relu=False)
    y = keras.layers.Add(name=name + "_add")([shortcut, y])
    return keras.layers.ReLU(name=name + "_out")(y)


def small_resnet(input_shape: Sequence[int] = (28, 28, 1), num_classes: int = 10,
                 widths: Sequence[int] = (16, 32, 64), blocks_per_stage: int = 1,
                 head_name: str = "predictions", name: str = "small_resnet") -> keras.Model:
    """Builds the small ResNet; returns a ``keras.Model`` mapping images to logits.

    Args:
      input_shape: (height, width, channels) of the float input images.
      num_classes: width of the dense classifier ``head_name``.
      widths: channels of each stage (one stage per entry).
      blocks_per_stage: basic blocks per stage (1 gives a ResNet-8 for three stages).
      head_name: name of the classifier layer.
    """
    inputs = keras.Input(input_shape, name="images")
    x = conv_bn(inputs, widths[0], 3, 1, "stem", relu=True)
    for s, filters in enumerate(widths, start=1):
        for b in range(1, blocks_per_stage + 1):
            strides = 2 if (s > 1 and b == 1) else 1
            x = _basic_block(x, filters, strides, f"stage{s}_block{b}")
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer="he_normal",
                                name=head_name)(features)
    return keras.Model(inputs, logits, name=name)
