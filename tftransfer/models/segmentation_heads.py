"""Segmentation heads on backbone features, and the two layers they need for inputs of any
size (``(None, None, C)``): :class:`ResizeLike` and :class:`AdaptiveAveragePooling`.

Heads (each ends in a 1x1 classifier ``<prefix>_classifier`` giving ``K`` logits at the
feature resolution; :func:`tftransfer.models.segmentation.build_segmentation` upsamples):

- ``resnet``: the 1x1 classifier on the features (ResNet-101 with global pooling removed);
- ``fcn``: 3x3 conv (``C/4`` channels) + BN + ReLU, dropout 0.1, 1x1 classifier;
- ``deeplab``: ASPP (DeepLabv3): a 1x1 and three 3x3 atrous branches (rates
  ``(6, 12, 18) * 16 / output_stride`` on the ImageNet ResNets) and image pooling
  (global mean, 1x1, broadcast back), each conv + BN + ReLU with 256 channels, concatenated,
  a 1x1 projection + BN + ReLU, dropout 0.1, 1x1 classifier;
- ``pspnet``: pyramid pooling (adaptive average pooling to 1x1, 2x2, 3x3 and 6x6 bins,
  each 1x1 conv (``C/4``) + BN + ReLU, upsampled bilinearly), concatenated with the
  features, 3x3 conv (``C/4``) + BN + ReLU, dropout 0.1, 1x1 classifier;
- the auxiliary head (PSPNet's deep supervision): ``fcn`` on the penultimate stage.

Every layer a head makes is new: its name starts with the head's prefix (``seg_``,
``aspp_``, ``psp_``, ``aux_``), never with a backbone unit's. Its batch norm is
``bn(name)``; its convolution kernels are initialised by ``init(i)`` (the i-th new kernel).
"""
from typing import Any, Callable, Sequence

import keras
from keras import ops

DROPOUT = 0.1
ASPP_RATES = (6, 12, 18)  # at output stride 16 (DeepLabv3)
ASPP_CHANNELS = 256
PSP_BINS = (1, 2, 3, 6)


def bilinear_resize(x: Any, height: int, width: int) -> Any:
    """Bilinear resize of ``[B, h, w, C]`` to ``[B, height, width, C]`` with half-pixel
    centres (``tf.image.resize``'s rule, no antialiasing): output pixel ``i`` samples the
    input at ``(i + 0.5) * h / height - 0.5``, clamped to ``[0, h - 1]``, interpolating its
    two neighbours. Pure ``keras.ops`` with tensor sizes, so it also runs where the sizes
    are known only when the graph runs."""
    def axis_weights(size_in, size_out):
        size_in_f = ops.cast(size_in, "float32")
        pos = (ops.cast(ops.arange(size_out), "float32") + 0.5) * (
            size_in_f / ops.cast(size_out, "float32")) - 0.5
        pos = ops.clip(pos, 0.0, size_in_f - 1.0)
        low = ops.floor(pos)
        frac = pos - low
        low = ops.cast(low, "int32")
        high = ops.minimum(low + 1, ops.cast(size_in, "int32") - 1)
        return low, high, frac

    shape = ops.shape(x)
    dtype = x.dtype
    x = ops.cast(x, "float32")
    low, high, frac = axis_weights(shape[1], height)
    frac = ops.reshape(frac, (1, -1, 1, 1))
    x = ops.take(x, low, axis=1) * (1.0 - frac) + ops.take(x, high, axis=1) * frac
    low, high, frac = axis_weights(shape[2], width)
    frac = ops.reshape(frac, (1, 1, -1, 1))
    x = ops.take(x, low, axis=2) * (1.0 - frac) + ops.take(x, high, axis=2) * frac
    return ops.cast(x, dtype)


@keras.saving.register_keras_serializable(package="tftransfer")
class ResizeLike(keras.layers.Layer):
    """``ResizeLike()([x, reference])``: ``x`` resized bilinearly to the height and width
    of ``reference`` (``keras.ops.image.resize`` when both sizes are known when the graph
    is built, else :func:`bilinear_resize`, the same half-pixel rule)."""

    def call(self, inputs: Any) -> Any:
        x, reference = inputs
        height, width = reference.shape[1], reference.shape[2]
        if isinstance(height, int) and isinstance(width, int) and all(
                isinstance(d, int) for d in x.shape[1:3]):
            if (height, width) == tuple(x.shape[1:3]):
                return x
            return ops.image.resize(x, (height, width), interpolation="bilinear")
        size = ops.shape(reference)
        return bilinear_resize(x, size[1], size[2])

    def compute_output_shape(self, input_shapes: Sequence[Sequence[int | None]]
                             ) -> tuple[int | None, ...]:
        x, reference = input_shapes
        return (x[0], reference[1], reference[2], x[3])


@keras.saving.register_keras_serializable(package="tftransfer")
class AdaptiveAveragePooling(keras.layers.Layer):
    """Average pooling of ``[B, H, W, C]`` into ``bins x bins`` cells, PyTorch's
    ``AdaptiveAvgPool2d`` rule: cell ``i`` of an axis of length ``n`` averages the rows
    ``floor(i * n / bins)`` to ``ceil((i + 1) * n / bins) - 1``. Computed from cumulative
    sums, so ``H`` and ``W`` may be unknown when the model is built."""

    def __init__(self, bins: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bins = int(bins)

    def _pool_axis(self, x, axis):
        n = ops.shape(x)[axis]
        zero = ops.zeros_like(ops.take(x, ops.convert_to_tensor([0]), axis=axis))
        cumulative = ops.concatenate([zero, ops.cumsum(x, axis=axis)], axis=axis)
        i = ops.arange(self.bins, dtype="int32")
        n = ops.cast(n, "int32")
        start = (i * n) // self.bins
        end = ((i + 1) * n + self.bins - 1) // self.bins
        total = ops.take(cumulative, end, axis=axis) - ops.take(cumulative, start, axis=axis)
        count = ops.cast(end - start, x.dtype)
        shape = [1, 1, 1, 1]
        shape[axis] = self.bins
        return total / ops.reshape(count, shape)

    def call(self, inputs: Any) -> Any:
        dtype = inputs.dtype
        x = ops.cast(inputs, "float32")
        return ops.cast(self._pool_axis(self._pool_axis(x, 1), 2), dtype)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return (input_shape[0], self.bins, self.bins, input_shape[3])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bins": self.bins}


@keras.saving.register_keras_serializable(package="tftransfer")
class BroadcastLike(keras.layers.Layer):
    """``BroadcastLike()([pooled, reference])``: ``[B, 1, 1, C]`` repeated over the height
    and width of ``reference`` (bilinear upsampling of a single pixel)."""

    def call(self, inputs: Any) -> Any:
        pooled, reference = inputs
        shape = ops.shape(reference)
        return ops.broadcast_to(pooled, (shape[0], shape[1], shape[2], pooled.shape[-1]))

    def compute_output_shape(self, input_shapes: Sequence[Sequence[int | None]]
                             ) -> tuple[int | None, ...]:
        pooled, reference = input_shapes
        return (reference[0], reference[1], reference[2], pooled[3])


class LayerMaker:
    """Names, batch norm and kernel initialisers of one head's new layers."""

    def __init__(self, bn: Callable[[str], keras.layers.Layer],
                 init: Callable[[int], keras.initializers.Initializer]) -> None:
        self.bn, self.init, self.count = bn, init, 0

    def conv(self, filters: int, kernel: int, name: str, rate: int = 1,
             bias: bool = False) -> keras.layers.Conv2D:
        self.count += 1
        return keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate,
                                   use_bias=bias, kernel_initializer=self.init(self.count),
                                   name=name)

    def conv_bn_relu(self, x: Any, filters: int, kernel: int, name: str, rate: int = 1) -> Any:
        x = self.conv(filters, kernel, name + "_conv", rate)(x)
        x = self.bn(name + "_bn")(x)
        return keras.layers.ReLU(name=name + "_relu")(x)

    def classifier(self, x: Any, num_classes: int, name: str, seed: int | None) -> Any:
        x = keras.layers.Dropout(DROPOUT, seed=seed, name=name + "_dropout")(x)
        return self.conv(num_classes, 1, name + "_classifier", bias=True)(x)


def resnet_head(features: Any, num_classes: int, make: LayerMaker,
                seed: int | None = None) -> Any:
    """1x1 classifier ``seg_classifier`` on the features (no dropout)."""
    return make.conv(num_classes, 1, "seg_classifier", bias=True)(features)


def fcn_head(features: Any, num_classes: int, make: LayerMaker, seed: int | None = None,
             prefix: str = "seg") -> Any:
    """3x3 conv + BN + ReLU (``C/4`` channels), dropout 0.1, 1x1 classifier."""
    x = make.conv_bn_relu(features, max(features.shape[-1] // 4, 1), 3, prefix + "_fcn")
    return make.classifier(x, num_classes, prefix, seed)


def aspp_rates(output_stride: int, reference_stride: int) -> tuple[int, ...]:
    """ASPP rates ``(6, 12, 18) * (reference_stride / 2) / output_stride``: DeepLabv3's
    rates at output stride 16 of a network whose largest stride is 32 (``reference_stride``),
    doubled at 8; the small ResNet (largest stride 4) gets ``(3, 6, 9)`` at 4."""
    scale = (reference_stride / 2) / output_stride
    return tuple(max(1, int(round(r * scale))) for r in ASPP_RATES)


def deeplab_head(features: Any, num_classes: int, make: LayerMaker, rates: Sequence[int],
                 seed: int | None = None) -> Any:
    """ASPP (see the module docstring), projection, dropout, 1x1 classifier."""
    channels = min(ASPP_CHANNELS, features.shape[-1])
    branches = [make.conv_bn_relu(features, channels, 1, "aspp_1x1")]
    for i, rate in enumerate(rates, start=1):
        branches.append(make.conv_bn_relu(features, channels, 3, f"aspp_atrous{i}", rate))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(features)
    pooled = make.conv_bn_relu(pooled, channels, 1, "aspp_pool")
    branches.append(BroadcastLike(name="aspp_pool_broadcast")([pooled, features]))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    x = make.conv_bn_relu(x, channels, 1, "aspp_project")
    return make.classifier(x, num_classes, "seg", seed)


def pspnet_head(features: Any, num_classes: int, make: LayerMaker,
                seed: int | None = None) -> Any:
    """Pyramid pooling with bins 1, 2, 3, 6, concatenation, 3x3 conv, dropout, classifier."""
    channels = max(features.shape[-1] // 4, 1)
    levels = [features]
    for bins in PSP_BINS:
        x = AdaptiveAveragePooling(bins, name=f"psp_pool{bins}")(features)
        x = make.conv_bn_relu(x, channels, 1, f"psp_pool{bins}")
        levels.append(ResizeLike(name=f"psp_pool{bins}_upsample")([x, features]))
    x = keras.layers.Concatenate(name="psp_concat")(levels)
    x = make.conv_bn_relu(x, channels, 3, "psp_fuse")
    return make.classifier(x, num_classes, "seg", seed)


def aux_head(features: Any, num_classes: int, make: LayerMaker,
             seed: int | None = None) -> Any:
    """PSPNet's auxiliary head: :func:`fcn_head` on the penultimate stage, prefix ``aux``."""
    return fcn_head(features, num_classes, make, seed, prefix="aux")
