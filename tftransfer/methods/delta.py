"""Feature-map L2-SP (``delta_fm``) and DELTA (``delta``): keep the feature maps of chosen
layers close to the starting point's.

Li, Xiong, Wang, Rao, Liu, Chen & Huan, "DELTA: DEep Learning Transfer using Feature Map
with Attention for Convolutional Networks", ICLR 2019. Added to the data loss::

    alpha * mean_x sum_l sum_c a_{l,c} * ||FM_{l,c}(w, x) - FM_{l,c}(w0, x)||^2
      + beta/2 * ||w_new||^2

``FM_{l,c}`` is channel ``c`` of the output of layer ``l`` (all spatial positions), ``w0``
the starting point and ``mean_x`` the mean over the batch (the paper's empirical risk is a
mean over examples). ``a_{l,c} = 1`` for feature-map L2-SP (``delta_fm``); for DELTA
(``delta``) ``a_{l,.}`` is the channel attention of :func:`channel_attention`: the
importance of channel ``c`` is the increase of the loss on target training data when that
channel of ``FM_l`` is set to zero, normalised over the channels of the layer by
``softmax(z / temperature)``, ``z`` the importances standardised to zero mean and unit
deviation (the convention of TLlib's ``delta.py``, temperature 5), computed *once* before
fine-tuning. No factor 1/2 on the feature-map term, and the attention sums to 1 over a
layer's channels, so ``delta``'s term is about ``C`` times smaller than ``delta_fm``'s
for the same ``alpha`` (TLlib multiplies by ``C / (H W)``; pass ``attention`` arrays
scaled as you like). ``beta/2 ||w_new||^2`` is :func:`loss_terms.decay_new_layers`.

The layers default to the output of the last unit of each stage
(:func:`default_feature_layers`: ``stage{s}_block{last}_out`` for the small ResNet,
``conv{s}_block{last}_out`` for the keras.applications ResNets).

Starting-point feature maps: computed **per step** by a frozen copy of the pretrained
network (inference mode, cloned once), as the paper's and TLlib's code do; the training
images are augmented, so a cache per image would be inexact. Cost: one extra forward pass
(no backward) per step.

Use with ``model.fit``: :func:`wrap` returns the
:class:`tftransfer.methods.loss_terms.LossTermModel` to compile and fit (``delta`` needs
target training batches for the attention, measured after the new head is trained for
``head_epochs`` on the frozen backbone, on a copy, as the paper does, so that the loss it
measures means something; the registry's default, 3 epochs, is this library's choice). Written with
``keras.ops`` (backend-neutral); :func:`channel_attention` runs eagerly.
"""
import re
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
from absl import logging
from keras import ops

from tftransfer import regularizers
from tftransfer.methods import loss_terms
from tftransfer.methods.registry import MethodSpec, register
from tftransfer.models import units as units_lib
from tftransfer.models.build import TransferModel

DEFAULT_TEMPERATURE = 5.0

DELTA_FM = register(MethodSpec(
    name="delta_fm", kind="loss",
    paper="Li et al., DELTA, ICLR 2019 (feature-map L2-SP, attention a = 1)",
    hyper_parameters={"alpha": 0.01, "beta": 0.01},
    formula="alpha * mean_x sum_l ||FM_l(w, x) - FM_l(w0, x)||^2 + beta/2 ||w_new||^2"))
DELTA = register(MethodSpec(
    name="delta", kind="loss",
    paper="Li et al., DELTA: DEep Learning Transfer using Feature Map with Attention, ICLR 2019",
    hyper_parameters={"alpha": 0.01, "beta": 0.01, "temperature": DEFAULT_TEMPERATURE,
                      "head_epochs": 3},
    formula="alpha * mean_x sum_l sum_c a_lc ||FM_lc(w, x) - FM_lc(w0, x)||^2 + beta/2 "
            "||w_new||^2, a_l = softmax(standardised loss increase when channel c is zeroed "
            "/ T)"))

_STAGE_UNIT = re.compile(r"^(?:stage|conv)(\d+)_block(\d+)$")


def default_feature_layers(model: keras.Model) -> list[str]:
    """Names of the output layers of the last unit of each stage of ``model`` (units as
    :mod:`tftransfer.models.units` reads them: ``stage{s}_block{b}`` or
    ``conv{s}_block{b}``): the layer ``<unit>_out`` if there is one, else the unit's last
    layer. ValueError for models without staged units: pass the layers."""
    table = units_lib.units(model)
    last = {}
    for unit in table:
        match = _STAGE_UNIT.match(unit)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            if stage not in last or block > last[stage][0]:
                last[stage] = (block, unit)
    if not last:
        raise ValueError(f"model {model.name!r} has no stage{{s}}_block{{b}} or "
                         f"conv{{s}}_block{{b}} units (its units: {list(table)}); name the "
                         "feature-map layers with layers=[...].")
    names = []
    for stage in sorted(last):
        unit = last[stage][1]
        layer_names = [layer.name for layer in table[unit]]
        names.append(unit + "_out" if unit + "_out" in layer_names else layer_names[-1])
    return names


class FeatureMapDistance(loss_terms.LossTerm):
    """``alpha * mean_x sum_l sum_c a_{l,c} ||FM_{l,c}(w, x) - FM_{l,c}(w0, x)||^2``.

    Args:
      layers: names of the layers whose outputs (channels last) are compared.
      alpha: strength (>= 0).
      attention: None (``a = 1``) or ``{layer name: array of its channels}``.
      name: the metric name.
    """

    def __init__(self, layers: Sequence[str], alpha: float = 0.01,
                 attention: Mapping[str, np.ndarray] | None = None,
                 name: str | None = None) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("FeatureMapDistance needs at least one layer.")
        self.alpha = regularizers.check_strength(alpha, "alpha")
        self.name = name or ("delta" if attention is not None else "delta_fm")
        self.attention = None
        if attention is not None:
            missing = [l for l in self.layers if l not in attention]
            if missing:
                raise ValueError(f"attention has no weights for layers {missing}.")
            self.attention = {l: np.asarray(attention[l], np.float32) for l in self.layers}
            for l, a in self.attention.items():
                if a.ndim != 1 or not np.all(np.isfinite(a)) or np.any(a < 0):
                    raise ValueError(f"attention[{l!r}] must be a 1-D array of finite "
                                     f"non-negative channel weights, got shape {a.shape}.")
        self.current_keys = self.start_keys = tuple(
            loss_terms.feature_map_key(l) for l in self.layers)

    def __call__(self, current: Mapping[str, Any], start: Mapping[str, Any], y: Any) -> Any:
        total = 0.0
        for layer, key in zip(self.layers, self.current_keys):
            diff = ops.cast(current[key], "float32") - ops.cast(start[key], "float32")
            per_channel = ops.sum(ops.square(diff), axis=tuple(range(1, len(diff.shape) - 1)))
            if self.attention is not None:
                weights = self.attention[layer]
                if weights.shape[0] != per_channel.shape[-1]:
                    raise ValueError(f"attention[{layer!r}] has {weights.shape[0]} weights, "
                                     f"the layer {per_channel.shape[-1]} channels.")
                per_channel = per_channel * ops.convert_to_tensor(weights)
            total = total + ops.mean(ops.sum(per_channel, axis=-1))
        return self.alpha * total

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "layers": self.layers, "alpha": self.alpha}


def _batches(data):
    """(x, y) NumPy batches from a tuple of arrays (one batch) or an iterable of batches."""
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], tuple):
        yield np.asarray(data[0]), np.asarray(data[1])
        return
    for batch in data:
        yield (np.asarray(ops.convert_to_numpy(batch[0])),
               np.asarray(ops.convert_to_numpy(batch[1])))


def channel_importance(model: keras.Model, layers: Sequence[str], data: Any,
                       loss_fn: Callable[[Any, Any], Any] | None = None,
                       max_batches: int | None = None,
                       max_rows: int = 512) -> dict[str, np.ndarray]:
    """``{layer: d}``, ``d[c]`` the mean over the examples of ``data`` of the increase of
    the per-example loss of ``model`` when channel ``c`` of the output of ``layer`` is set
    to zero (every position), the rest unchanged; ``model`` runs in inference mode.

    Args:
      model: functional model, images -> logits; each layer's output must be a cut of the
        graph (the logits depend on the images through it alone), as block outputs of a
        ResNet are.
      layers: layer names.
      data: ``(images, labels)`` arrays, or an iterable of such batches (a tf.data set).
      loss_fn: ``loss_fn(labels, logits) -> per-example losses``; default sparse
        categorical cross-entropy on logits.
      max_batches: use at most this many batches.
      max_rows: examples per forward pass of the head side (channels are batched).
    """
    if loss_fn is None:
        def loss_fn(labels, logits):
            return keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                from_logits=True)
    fm_model = keras.Model(model.input, [model.get_layer(l).output for l in layers])
    tails = []
    for l in layers:
        try:
            tails.append(keras.Model(model.get_layer(l).output, model.output))
        except Exception as error:  # Keras' message on a graph that is not cut there
            raise ValueError(f"the logits of {model.name!r} do not depend on the images "
                             f"through layer {l!r} alone, so its channels cannot be zeroed "
                             f"one by one ({error}).") from error
    sums = [None] * len(layers)
    count = 0
    for i, (x, y) in enumerate(_batches(data)):
        if max_batches is not None and i >= max_batches:
            break
        maps = fm_model(x, training=False)
        maps = maps if isinstance(maps, (list, tuple)) else [maps]
        n = x.shape[0]
        for j, (fm, tail) in enumerate(zip(maps, tails)):
            fm = np.asarray(ops.convert_to_numpy(fm))
            channels = fm.shape[-1]
            base = np.asarray(ops.convert_to_numpy(loss_fn(y, tail(fm, training=False))),
                              np.float64)
            increase = np.zeros(channels)
            chunk = max(1, max_rows // n)
            for c0 in range(0, channels, chunk):
                cs = np.arange(c0, min(channels, c0 + chunk))
                mask = np.ones((len(cs), 1) + (1,) * (fm.ndim - 2) + (channels,), fm.dtype)
                mask[np.arange(len(cs)), ..., cs] = 0
                masked = (fm[None] * mask).reshape((-1,) + fm.shape[1:])
                losses = loss_fn(np.tile(y, len(cs)), tail(masked, training=False))
                losses = np.asarray(ops.convert_to_numpy(losses), np.float64)
                increase[cs] = (losses.reshape(len(cs), n) - base[None]).sum(axis=1)
            sums[j] = increase if sums[j] is None else sums[j] + increase
        count += n
    if count == 0:
        raise ValueError("channel_importance: data holds no examples.")
    return {l: s / count for l, s in zip(layers, sums)}


def attention_from_importance(importance: np.ndarray, temperature: float = DEFAULT_TEMPERATURE,
                              standardize: bool = True) -> np.ndarray:
    """``softmax(z / temperature)`` over channels, ``z`` the importance standardised to zero
    mean and unit deviation over the layer's channels (``standardize``), else the
    importance itself. A layer whose channels are all equally important gets ``1 / C``."""
    temperature = float(temperature)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    z = np.asarray(importance, np.float64)
    if standardize:
        std = z.std()
        z = (z - z.mean()) / std if std > 0 else np.zeros_like(z)
    z = z / temperature
    e = np.exp(z - z.max())
    return (e / e.sum()).astype(np.float32)


def _with_trained_head(model, data, epochs, head_layers, batch_size=32):
    """A copy of ``model`` whose ``head_layers`` (default: its last layer) were trained for
    ``epochs`` on ``data`` with the rest frozen; ``model`` is left as it is."""
    copy = keras.models.clone_model(model, clone_function=loss_terms.without_regularizers)
    copy.set_weights(model.get_weights())
    head_layers = set(head_layers or [model.layers[-1].name])
    for layer in copy.layers:
        layer.trainable = layer.name in head_layers
    copy.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], tuple):
        copy.fit(data[0], data[1], batch_size=batch_size, epochs=epochs, verbose=0)
    else:
        copy.fit(data, epochs=epochs, verbose=0)
    return copy


def channel_attention(model: keras.Model, layers: Sequence[str], data: Any,
                      temperature: float = DEFAULT_TEMPERATURE, standardize: bool = True,
                      head_epochs: int = 0, head_layers: Sequence[str] | None = None,
                      **kwargs: Any) -> dict[str, np.ndarray]:
    """DELTA's attention ``{layer: a}`` (``a`` sums to 1 over the channels): the
    :func:`channel_importance` of each channel through :func:`attention_from_importance`.

    ``head_epochs > 0``: the importance is measured on a copy of ``model`` whose new head
    (``head_layers``, default the last layer) was first trained that many epochs on
    ``data`` over the frozen pretrained backbone (sparse cross-entropy, SGD 0.01 with
    momentum 0.9), as DELTA does before it measures the loss; ``model`` itself, and so the
    fine-tuning's starting point, is unchanged. ``kwargs`` go to
    :func:`channel_importance`."""
    if head_epochs:
        model = _with_trained_head(model, data, int(head_epochs), head_layers)
    importance = channel_importance(model, layers, data, **kwargs)
    attention = {l: attention_from_importance(d, temperature, standardize)
                 for l, d in importance.items()}
    for l, a in attention.items():
        logging.info("DELTA attention of %s: %d channels, max weight %.4f (uniform %.4f).",
                     l, a.size, a.max(), 1.0 / a.size)
    return attention


def wrap(transfer_model: TransferModel | keras.Model, alpha: float = 0.01, beta: float = 0.01,
         layers: Sequence[str] | None = None,
         attention: Mapping[str, np.ndarray] | None = None, attention_data: Any = None,
         temperature: float = DEFAULT_TEMPERATURE, head_epochs: int = 0,
         **attention_kwargs: Any) -> loss_terms.LossTermModel:
    """The :class:`~tftransfer.methods.loss_terms.LossTermModel` of ``delta_fm`` (no
    attention) or ``delta`` (``attention`` given, or computed from ``attention_data`` with
    :func:`channel_attention`, its head first trained ``head_epochs`` on a copy) around
    ``transfer_model`` (a ``TransferModel`` or a Keras model, whose layers named in
    ``transfer_model.new_layers`` get ``beta``)."""
    model = getattr(transfer_model, "model", transfer_model)
    layers = list(layers) if layers is not None else default_feature_layers(model)
    if attention is None and attention_data is not None:
        new_layers = getattr(transfer_model, "new_layers", None)
        attention = channel_attention(model, layers, attention_data, temperature,
                                      head_epochs=head_epochs, head_layers=new_layers,
                                      **attention_kwargs)
    loss_terms.decay_new_layers(model, beta, getattr(transfer_model, "new_layers", []))
    term = FeatureMapDistance(layers, alpha, attention)
    return loss_terms.LossTermModel(model, [term],
                                    source_head=getattr(transfer_model, "source_head", None))
