"""Segmentation networks from the classification ResNets: :func:`build_segmentation`.

``build_segmentation(head, arch, num_classes, source, weights=None, ...)``:

1. builds the classification model of ``arch`` with its source weights through
   :func:`tftransfer.models.build.build` (the one place weights are found and loaded;
   ``source``, ``weights``, ``layout``, ``source_classes``, ``arch_kwargs`` and
   ``cache_dir`` mean what they mean there);
2. builds its dilated twin (:mod:`tftransfer.models.dilated_resnet`: no pooling, no
   classifier, ``output_stride`` 8, 16 or 32 on the ImageNet ResNets, 1, 2 or 4 on the
   three-stage small ResNet) and copies every weight by layer name (same names, same
   shapes);
3. puts a head of :data:`HEADS` on it (:mod:`tftransfer.models.segmentation_heads`) and
   upsamples the logits bilinearly to the input size, in float32 (layer ``logits``).

Batch norm (:data:`BATCH_NORM_MODES`, :mod:`tftransfer.models.batch_norm`) applies to the
inherited backbone. New batch-norm layers (heads, ASPP, pyramid, auxiliary head) are always
trained (batch statistics, moving averages, scale and offset), synchronised when
``synchronized_bn``: they have no statistics to keep. Batch norm on the 1x1 image-pooling
branches of ASPP and of the pyramid needs a batch of 2 or more in training (a single
pooled value per channel has zero variance).

Inputs may be ``(None, None, C)``: every layer works at sizes known only when it runs
(whole-image and sliding-window evaluation at another size than the training crops).
"""
import dataclasses
import numbers
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import keras

from tftransfer.models import batch_norm as batch_norm_lib
from tftransfer.models import dilated_resnet
from tftransfer.models import segmentation_heads as heads_lib
from tftransfer.models.build import HEAD_INITS, build, resolve_layout
from tftransfer.models.layers import BN_EPSILON, BN_MOMENTUM
from tftransfer.models.units import unit_names

if TYPE_CHECKING:
    from tftransfer.penalty import PenaltyPlan

HEADS = ("fcn", "resnet", "deeplab", "pspnet")
BATCH_NORM_MODES = batch_norm_lib.BATCH_NORM_MODES
ARCHS = ("resnet50", "resnet101", "resnet152", "small_resnet")
AUX_WEIGHT = 0.4  # PSPNet's auxiliary loss weight
LOGITS = "logits"
AUX_LOGITS = "aux_logits"
SMALL_RESNET_WIDTHS = (16, 32, 64)  # small_resnet's default widths
_DEPTH = {"resnet50": 50, "resnet101": 101, "resnet152": 152}
_SOURCE_SIZE = 64  # the classification model that carries the source weights is built here


@dataclasses.dataclass
class SegmentationModel:
    """What :func:`build_segmentation` returns.

    ``model``: images ``[B, H, W, C]`` -> float32 logits ``[B, H, W, K]`` (evaluated and
    exported); ``train_model``: images -> ``[logits, aux_logits]`` when the auxiliary head
    exists, else ``model`` itself (the same layers); ``new_layers``: names of the layers not
    inherited (every layer with weights for ``source="none"``); ``units``: the backbone's
    units (:mod:`tftransfer.models.units`).
    """

    model: keras.Model
    train_model: keras.Model
    new_layers: List[str]
    units: List[str]
    preprocessing: str
    arch: str
    head: str
    source: str
    weights: Optional[str]
    output_stride: int
    aux_weight: float
    layout: str = "native"
    batch_norm: str = "train"

    @property
    def inherited_layers(self) -> List[str]:
        """Names of the layers with weights taken from the source network."""
        new = set(self.new_layers)
        return [layer.name for layer in self.train_model.layers
                if layer.weights and layer.name not in new]

    def penalize(self, scheme: str, alpha: float, beta: float, **kwargs: Any) -> "PenaltyPlan":
        """``tftransfer.penalize(self.train_model, scheme, alpha, beta,
        new_layers=self.new_layers, **kwargs)``: the scheme on the inherited kernels (toward
        the source weights for the -SP schemes), L2(beta) toward zero on the new ones."""
        from tftransfer.penalty import penalize
        return penalize(self.train_model, scheme, alpha, beta, new_layers=self.new_layers,
                        **kwargs)


def build_segmentation(head: str, arch: str, num_classes: int, source: str,
                       weights: Optional[str] = None,
                       input_shape: Sequence[int] = (512, 1024, 3), output_stride: int = 8,
                       layout: Optional[str] = None, source_classes: Optional[int] = None,
                       head_init: str = "he", seed: Optional[int] = None,
                       batch_norm: str = "train", synchronized_bn: bool = False,
                       aux_weight: Optional[float] = None,
                       arch_kwargs: Optional[Dict[str, Any]] = None,
                       cache_dir: Optional[str] = None,
                       name: Optional[str] = None) -> "SegmentationModel":
    """Builds the ``head`` segmentation network on ``arch`` for ``num_classes`` classes.

    Args:
      head: one of :data:`HEADS`.
      arch: ``resnet50``, ``resnet101``, ``resnet152`` (keras.applications or, with
        ``layout="torch"``, torchvision layout) or ``small_resnet``.
      num_classes: classes of the segmentation task (``K``).
      source, weights, layout, source_classes, arch_kwargs, cache_dir: as in
        :func:`tftransfer.models.build.build`.
      input_shape: ``(H, W, C)``; ``H`` and ``W`` may be None.
      output_stride: input size / feature size (see :mod:`tftransfer.models.dilated_resnet`).
      head_init: ``"he"`` or ``"glorot"``: initialisation of every new convolution kernel
        (biases start at 0); ``seed`` seeds them (the i-th with ``seed + i``) and the dropouts.
      batch_norm: one of :data:`BATCH_NORM_MODES`, for the inherited backbone.
      synchronized_bn: ``keras.layers.BatchNormalization(synchronized=True)`` for every
        trained batch norm (``mirrored`` / ``multi_worker``; TensorFlow backend).
      aux_weight: weight of the auxiliary loss on the penultimate stage; default 0.4 for
        ``pspnet`` and 0 (no auxiliary head) for the others; 0 disables it.
      name: name of ``model`` (``train_model`` adds ``_train``).
    """
    _check(head, arch, num_classes, head_init, aux_weight)
    batch_norm_lib.check_mode(batch_norm, synchronized_bn)
    aux_weight = float(AUX_WEIGHT if head == "pspnet" else 0.0) if aux_weight is None \
        else float(aux_weight)
    input_shape = tuple(input_shape)
    layout = resolve_layout(arch, layout)
    arch_kwargs = dict(arch_kwargs or {})
    source_shape = (_SOURCE_SIZE, _SOURCE_SIZE, input_shape[-1])
    classification = build(arch, 1, source, weights=weights, input_shape=source_shape,
                           layout=layout, source_classes=source_classes, cache_dir=cache_dir,
                           arch_kwargs=arch_kwargs)

    def backbone_bn(layer_name, momentum, epsilon):
        return batch_norm_lib.batch_norm(layer_name, batch_norm, synchronized_bn, momentum,
                                         epsilon)

    backbone = _backbone(arch, layout, input_shape, output_stride, backbone_bn, arch_kwargs)
    if source != "none":
        copy_by_name(classification.model, backbone)
    preprocessing, resolved_weights = classification.preprocessing, classification.weights
    del classification

    def head_bn(layer_name):
        return batch_norm_lib.batch_norm(layer_name, "train", synchronized_bn, BN_MOMENTUM,
                                         BN_EPSILON)

    def init(i):
        return HEAD_INITS[head_init](seed=None if seed is None else seed + i)

    make = heads_lib.LayerMaker(head_bn, init)
    penultimate, features = backbone.outputs
    if head == "deeplab":
        rates = heads_lib.aspp_rates(output_stride, _largest_stride(arch, arch_kwargs))
        small = heads_lib.deeplab_head(features, num_classes, make, rates, seed)
    else:
        small = _HEAD_BUILDERS[head](features, num_classes, make, seed)
    inputs = backbone.inputs[0]
    logits = heads_lib.ResizeLike(name=LOGITS, dtype="float32")([small, inputs])
    model_name = name or f"{arch}_{head}"
    model = keras.Model(inputs, logits, name=model_name)
    train_model = model
    if aux_weight > 0:
        aux_small = heads_lib.aux_head(penultimate, num_classes, make, seed)
        aux = heads_lib.ResizeLike(name=AUX_LOGITS, dtype="float32")([aux_small, inputs])
        train_model = keras.Model(inputs, [logits, aux], name=model_name + "_train")
    backbone_names = {layer.name for layer in backbone.layers}
    if source == "none":
        new_layers = [layer.name for layer in train_model.layers if layer.weights]
    else:
        new_layers = [layer.name for layer in train_model.layers
                      if layer.name not in backbone_names]
    return SegmentationModel(
        model=model, train_model=train_model, new_layers=new_layers,
        units=unit_names(backbone), preprocessing=preprocessing, arch=arch, head=head,
        source=source, weights=resolved_weights, output_stride=int(output_stride),
        aux_weight=aux_weight, layout=layout, batch_norm=batch_norm)


_HEAD_BUILDERS = {"resnet": heads_lib.resnet_head, "fcn": heads_lib.fcn_head,
                  "pspnet": heads_lib.pspnet_head}


def _largest_stride(arch, arch_kwargs):
    """The output stride of ``arch`` without dilation (32, or the small ResNet's)."""
    if arch in _DEPTH:
        return 32
    return 2 ** (len(arch_kwargs.get("widths", SMALL_RESNET_WIDTHS)) - 1)


def _check(head, arch, num_classes, head_init, aux_weight):
    if head not in HEADS:
        raise ValueError(f"Unknown segmentation head {head!r}; expected one of {HEADS}.")
    if arch not in ARCHS:
        raise ValueError(f"arch {arch!r} has no segmentation backbone; expected one of {ARCHS}.")
    if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if head_init not in HEAD_INITS:
        raise ValueError(f"Unknown head_init {head_init!r}; expected one of {list(HEAD_INITS)}.")
    if aux_weight is not None and not (float(aux_weight) >= 0):
        raise ValueError(f"aux_weight must be >= 0 (0 disables the auxiliary head), got "
                         f"{aux_weight!r}.")


def _backbone(arch, layout, input_shape, output_stride, bn, arch_kwargs):
    if arch in _DEPTH:
        if arch_kwargs:
            raise ValueError(f"arch_kwargs {sorted(arch_kwargs)} do not apply to the "
                             f"segmentation backbone of {arch}; drop them.")
        builder = (dilated_resnet.dilated_resnet_keras if layout == "keras"
                   else dilated_resnet.dilated_resnet_torch)
        return builder(_DEPTH[arch], input_shape, output_stride, bn)
    unknown = set(arch_kwargs) - {"widths", "blocks_per_stage"}
    if unknown:
        raise ValueError(f"arch_kwargs {sorted(unknown)} do not apply to small_resnet's "
                         "segmentation backbone (widths, blocks_per_stage).")
    return dilated_resnet.dilated_small_resnet(input_shape, output_stride, bn, **arch_kwargs)


def copy_by_name(source: keras.Model, target: keras.Model) -> None:
    """Sets every layer of ``target`` that has weights to the weights of the ``source``
    layer of the same name; ValueError naming the first missing layer or differing shape."""
    by_name = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name not in by_name:
            raise ValueError(f"The source network has no layer {layer.name!r} for the "
                             f"segmentation backbone {target.name!r}.")
        values = by_name[layer.name].get_weights()
        shapes = [tuple(v.shape) for v in layer.weights]
        if [tuple(v.shape) for v in values] != shapes:
            raise ValueError(f"Layer {layer.name!r}: source weights of shapes "
                             f"{[v.shape for v in values]} do not fit the backbone's {shapes}.")
        layer.set_weights(values)
