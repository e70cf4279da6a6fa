"""Dilated (atrous) twins of the package's ResNets: the classification network without its
pooling and classifier, with a chosen output stride (DeepLab, Chen et al. 2017).

A twin has the **same layer names and weight shapes** as the classification network of
:func:`tftransfer.models.build.source_network`, so its weights are copied by layer name:

- ``keras`` layout: the keras.applications ResNet-50/101/152 (``conv1_*``, ``pool1_*``,
  ``conv{2..5}_block{b}_*``; v1 blocks striding in the first 1x1 convolution);
- ``torch`` layout: :mod:`tftransfer.models.resnet_torch` (``stem_*``, ``stage{1..4}_*``;
  striding in the 3x3 convolution, symmetric padding);
- ``native``: :mod:`tftransfer.models.small_resnet` (a 3x3 stem at stride 1, then stages of
  basic blocks halving the resolution from the second stage on).

Output stride (input size / feature size): the ImageNet ResNets reach 32 (8 or 16 with
dilation), the small ResNet ``2 ** (len(widths) - 1)`` (4 for three stages; 2 or 1 with
dilation). The rule is DeepLab's (TF-slim ``stack_blocks_dense``): once the running stride
equals ``output_stride``, a block that would stride keeps stride 1 and the current rate, and
every later block's 3x3 convolutions use the rate multiplied by the stride that was dropped.
At the largest output stride nothing changes: the twin computes the classification
network's pre-pooling features. Each builder returns a ``keras.Model`` from images to
``[penultimate-stage features, last-stage features]`` (the former feeds PSPNet's auxiliary
head). ``bn(name, momentum, epsilon)`` makes every batch-norm layer
(:func:`tftransfer.models.batch_norm.batch_norm` with a mode).
"""
from typing import Callable, Sequence

import keras

from tftransfer.models.resnet_torch import DEPTHS, STAGE_FILTERS
from tftransfer.models.layers import BN_EPSILON, BN_MOMENTUM

KERAS_BN = {"momentum": 0.99, "epsilon": 1.001e-5}  # keras.applications' batch norm
NATIVE_BN = {"momentum": BN_MOMENTUM, "epsilon": BN_EPSILON}  # the package's ResNets


def stage_plan(strides: Sequence[int], output_stride: int,
               stem_stride: int) -> list[tuple[int, int, int]]:
    """``[(stride, first_rate, rate)]`` per stage: the stride of its first block, the
    dilation rate of that block's 3x3 convolutions and of the later blocks'. ``strides``:
    the stages' strides in the classification network; ``stem_stride``: the stride before
    the first stage. ValueError for an output stride the network cannot have."""
    reachable, running = [], stem_stride
    for stride in strides:
        running *= stride
        if not reachable or reachable[-1] != running:
            reachable.append(running)
    if output_stride not in reachable:
        raise ValueError(f"output_stride={output_stride!r} is not reachable: this network's "
                         f"output strides are {reachable} (input size / feature size).")
    plan, running, rate = [], stem_stride, 1
    for stride in strides:
        if running * stride <= output_stride:
            plan.append((stride, rate, rate))
            running *= stride
        else:
            plan.append((1, rate, rate * stride))
            rate *= stride
    return plan


def _bn(bn, name, settings):
    return bn(name, momentum=settings["momentum"], epsilon=settings["epsilon"])


# keras.applications layout -----------------------------------------------------------

def _keras_block(x, filters, stride, rate, name, bn):
    """keras.applications' ``residual_block_v1`` (conv shortcut in the first block of a
    stage), with ``dilation_rate`` in the 3x3 convolution."""
    relu = keras.layers.Activation
    if name.endswith("_block1"):
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
        shortcut = _bn(bn, name + "_0_bn", KERAS_BN)(shortcut)
    else:
        shortcut = x
    x = keras.layers.Conv2D(filters, 1, strides=stride, name=name + "_1_conv")(x)
    x = relu("relu", name=name + "_1_relu")(_bn(bn, name + "_1_bn", KERAS_BN)(x))
    x = keras.layers.Conv2D(filters, 3, padding="same", dilation_rate=rate,
                            name=name + "_2_conv")(x)
    x = relu("relu", name=name + "_2_relu")(_bn(bn, name + "_2_bn", KERAS_BN)(x))
    x = keras.layers.Conv2D(4 * filters, 1, name=name + "_3_conv")(x)
    x = _bn(bn, name + "_3_bn", KERAS_BN)(x)
    x = keras.layers.Add(name=name + "_add")([shortcut, x])
    return relu("relu", name=name + "_out")(x)


def dilated_resnet_keras(depth: int, input_shape: Sequence[int], output_stride: int,
                         bn: Callable[..., keras.layers.Layer],
                         name: str | None = None) -> keras.Model:
    """The keras.applications ResNet-``depth`` up to ``conv5``, at ``output_stride``."""
    blocks = _blocks(depth)
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(_bn(bn, "conv1_bn", KERAS_BN)(x))
    x = keras.layers.ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    plan = stage_plan((1, 2, 2, 2), output_stride, stem_stride=4)
    outputs = []
    for s, (filters, n, (stride, first_rate, rate)) in enumerate(
            zip(STAGE_FILTERS, blocks, plan), start=2):
        for b in range(1, n + 1):
            x = _keras_block(x, filters, stride if b == 1 else 1,
                             first_rate if b == 1 else rate, f"conv{s}_block{b}", bn)
        outputs.append(x)
    return keras.Model(inputs, outputs[-2:], name=name or f"resnet{depth}_os{output_stride}")


# torchvision layout ------------------------------------------------------------------

def _torch_conv_bn(x, filters, kernel, stride, rate, name, relu, bn):
    """resnet_torch's ``conv_bn`` (symmetric zero padding, 'valid' convolution without
    bias) with ``dilation_rate``: the padding becomes ``rate * (kernel // 2)``."""
    pad = rate * (kernel // 2)
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=name + "_pad")(x)
    x = keras.layers.Conv2D(filters, kernel, strides=stride, dilation_rate=rate,
                            padding="valid", use_bias=False, kernel_initializer="he_normal",
                            name=name + "_conv")(x)
    x = _bn(bn, name + "_bn", NATIVE_BN)(x)
    return keras.layers.ReLU(name=name + "_relu")(x) if relu else x


def _torch_block(x, filters, stride, rate, project, name, bn):
    shortcut = x
    if project:
        shortcut = _torch_conv_bn(x, 4 * filters, 1, stride, 1, name + "_0", False, bn)
    y = _torch_conv_bn(x, filters, 1, 1, 1, name + "_1", True, bn)
    y = _torch_conv_bn(y, filters, 3, stride, rate, name + "_2", True, bn)
    y = _torch_conv_bn(y, 4 * filters, 1, 1, 1, name + "_3", False, bn)
    y = keras.layers.Add(name=name + "_add")([shortcut, y])
    return keras.layers.ReLU(name=name + "_out")(y)


def dilated_resnet_torch(depth: int, input_shape: Sequence[int], output_stride: int,
                         bn: Callable[..., keras.layers.Layer],
                         name: str | None = None) -> keras.Model:
    """The torchvision-layout ResNet-``depth`` up to ``stage4``, at ``output_stride``."""
    blocks = _blocks(depth)
    inputs = keras.Input(input_shape, name="images")
    x = _torch_conv_bn(inputs, 64, 7, 2, 1, "stem", True, bn)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    plan = stage_plan((1, 2, 2, 2), output_stride, stem_stride=4)
    outputs = []
    for s, (filters, n, (stride, first_rate, rate)) in enumerate(
            zip(STAGE_FILTERS, blocks, plan), start=1):
        for b in range(1, n + 1):
            project = b == 1  # as in resnet_torch: the first block changes the width
            x = _torch_block(x, filters, stride if b == 1 else 1,
                             first_rate if b == 1 else rate, project, f"stage{s}_block{b}", bn)
        outputs.append(x)
    return keras.Model(inputs, outputs[-2:],
                       name=name or f"resnet{depth}_torch_os{output_stride}")


# small ResNet --------------------------------------------------------------------------

def _native_conv_bn(x, filters, stride, rate, kernel, name, relu, bn):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, dilation_rate=rate,
                            padding="same", use_bias=False, kernel_initializer="he_normal",
                            name=name + "_conv")(x)
    x = _bn(bn, name + "_bn", NATIVE_BN)(x)
    return keras.layers.ReLU(name=name + "_relu")(x) if relu else x


def dilated_small_resnet(input_shape: Sequence[int], output_stride: int,
                         bn: Callable[..., keras.layers.Layer],
                         widths: Sequence[int] = (16, 32, 64), blocks_per_stage: int = 1,
                         name: str | None = None) -> keras.Model:
    """:func:`tftransfer.models.small_resnet.small_resnet` without pooling and classifier,
    at ``output_stride`` (``2 ** (len(widths) - 1)`` without dilation)."""
    if len(widths) < 2:
        raise ValueError(f"widths={widths!r}: the segmentation backbone needs at least two "
                         "stages (the auxiliary head reads the penultimate one).")
    inputs = keras.Input(input_shape, name="images")
    x = _native_conv_bn(inputs, widths[0], 1, 1, 3, "stem", True, bn)
    strides = [1] + [2] * (len(widths) - 1)
    plan = stage_plan(strides, output_stride, stem_stride=1)
    outputs = []
    for s, (filters, original, (stride, first_rate, rate)) in enumerate(
            zip(widths, strides, plan), start=1):
        for b in range(1, blocks_per_stage + 1):
            name_b = f"stage{s}_block{b}"
            block_stride, block_rate = (stride, first_rate) if b == 1 else (1, rate)
            # the classification network projects where it strides or changes width
            project = (b == 1 and original != 1) or x.shape[-1] != filters
            shortcut = x
            if project:
                shortcut = _native_conv_bn(x, filters, block_stride, 1, 1, name_b + "_shortcut",
                                           False, bn)
            y = _native_conv_bn(x, filters, block_stride, block_rate, 3, name_b + "_1", True, bn)
            y = _native_conv_bn(y, filters, 1, block_rate, 3, name_b + "_2", False, bn)
            y = keras.layers.Add(name=name_b + "_add")([shortcut, y])
            x = keras.layers.ReLU(name=name_b + "_out")(y)
        outputs.append(x)
    return keras.Model(inputs, outputs[-2:], name=name or f"small_resnet_os{output_stride}")


def _blocks(depth):
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth {depth!r} is not supported; choose one of "
                         f"{sorted(DEPTHS)}.")
    return DEPTHS[depth]
