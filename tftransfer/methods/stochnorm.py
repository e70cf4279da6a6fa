"""StochNorm: batch norm whose channels pick batch or moving statistics at random.

Kou, You, Long & Wang, "Stochastic Normalization", NeurIPS 2020. During fine-tuning every
batch-norm layer is replaced by a two-branch layer. For channel ``c`` of input ``x``::

    xhat_batch  = (x - mu_B) / sqrt(var_B + eps)             (statistics of the batch)
    xhat_moving = (x - mu_M) / sqrt(var_M + eps)             (moving statistics, constants)
    s_c ~ Bernoulli(p), drawn afresh for every channel at every training call
    y = gamma * ((1 - s_c) * xhat_moving + s_c * xhat_batch) + beta

so each channel normalises with the batch's statistics with probability ``p`` and with the
moving statistics otherwise (``p = 0.5`` in the paper). The moving branch uses the moving
statistics as they were before this call; the moving statistics are then updated from the
batch as batch norm does (``m <- momentum * m + (1 - momentum) * batch``; Keras' biased batch
variance). No gradient flows through the moving statistics. At inference the layer is
batch norm with its moving statistics, so a trained model can be exported as it is.
Since every channel is exactly one branch, the layer selects each channel's statistics,
``s * (mu_B, var_B) + (1 - s) * (mu_M, var_M)``, and normalises once: the same values and
gradients as computing both branches, at the cost of one batch norm.
Which branch ``s_c = 1`` selects follows the authors' code (github thuml/StochNorm,
``module/stoch_norm.py``, ``z = (1 - s) * z_0 + s * z_1``, ``z_1`` the batch-statistics
branch); with ``p = 0.5`` the two readings agree.

How it plugs into ``model.fit`` (a layer swap, before ``penalize`` and ``compile``)::

    tm = build(...)
    tm = swap_batch_norm(tm, p=0.5, seed=0)     # or a keras.Model: returns a new model
    tm.penalize("l2_sp", alpha, beta); tm.model.compile(...); tm.model.fit(...)

:func:`swap_batch_norm` clones a functional or Sequential model with every top-level
``BatchNormalization`` replaced by :class:`StochNorm` (same name, config and weights), every
other layer cloned with its weights; a :class:`~tftransfer.models.build.TransferModel` comes
back with its ``model`` replaced. A frozen batch-norm layer (``trainable=False``, inference
mode in Keras 3) stays in inference mode. Written with ``keras.ops`` and ``keras.random``:
backend-neutral.
"""
import dataclasses
from typing import TYPE_CHECKING, Any

import keras
from absl import logging
from keras import ops

from tftransfer.methods.registry import MethodSpec, register

if TYPE_CHECKING:
    from tftransfer.models.build import TransferModel

try:  # the class of functional models (keras.Model(inputs, outputs))
    from keras.src.models.functional import Functional as _Functional
except ImportError:  # pragma: no cover - another Keras layout
    _Functional = keras.Model

DEFAULT_P = 0.5

SPEC = register(MethodSpec(
    name="stochnorm", kind="layer", paper="Kou et al., NeurIPS 2020 (Stochastic Normalization)",
    hyper_parameters={"p": DEFAULT_P},
    formula="per channel y = gamma*((1-s)*xhat_moving + s*xhat_batch) + beta, s ~ Bernoulli(p)"))


@keras.saving.register_keras_serializable(package="tftransfer")
class StochNorm(keras.layers.BatchNormalization):
    """Batch normalisation with per-channel stochastic choice of statistics (see the module
    docstring). ``p``: probability that a channel uses the batch statistics during training;
    ``seed``: seed of the Bernoulli draws. Every other argument is ``BatchNormalization``'s
    (``renorm`` is not supported)."""

    def __init__(self, p: float = DEFAULT_P, seed: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("renorm"):
            raise ValueError("StochNorm does not support batch renormalization (renorm=True).")
        super().__init__(**kwargs)
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"StochNorm: p must be a probability in [0, 1], got {p}.")
        self.p = p
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def channel_selection(self) -> Any:
        """A fresh draw of ``s`` (1.0: batch statistics, 0.0: moving), one per channel."""
        channels = self.moving_mean.shape[0]
        draw = keras.random.uniform((channels,), seed=self.seed_generator)
        return ops.cast(ops.less(draw, self.p), "float32")

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not (training and self.trainable):
            return super().call(inputs, training=False, mask=mask)
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = ops.cast(inputs, compute_dtype)
        moving_mean = ops.cast(self.moving_mean, compute_dtype)
        moving_variance = ops.cast(self.moving_variance, compute_dtype)
        mean, variance = self._moments(inputs, mask)
        # Each channel is exactly one branch, so choosing its statistics and normalising
        # once gives both branches' values and gradients (none through the moving ones).
        selection = ops.cast(self.channel_selection(), compute_dtype)
        outputs = ops.batch_normalization(
            x=inputs,
            mean=selection * mean + (1.0 - selection) * moving_mean,
            variance=selection * variance + (1.0 - selection) * moving_variance,
            axis=self.axis,
            offset=ops.cast(self.beta, compute_dtype) if self.center else None,
            scale=ops.cast(self.gamma, compute_dtype) if self.scale else None,
            epsilon=self.epsilon)
        self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "p": self.p, "seed": self.seed}


def _check_p(p):
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}.")
    return p


def swap_batch_norm(model: "keras.Model | TransferModel", p: float = DEFAULT_P,
                    seed: int | None = None) -> "keras.Model | TransferModel":
    """A copy of ``model`` (a functional or Sequential ``keras.Model``, or a
    ``TransferModel``) with every top-level ``BatchNormalization`` replaced by
    :class:`StochNorm` with probability ``p`` (layer ``i`` seeded ``seed + i`` when ``seed``
    is given). Names, configs, weights and ``trainable`` flags are kept; returns the same
    kind of object it was given. Call it before ``penalize`` and ``compile``."""
    from tftransfer.models.build import TransferModel  # the layer itself needs no models
    if isinstance(model, TransferModel):
        return dataclasses.replace(model, model=swap_batch_norm(model.model, p, seed))
    p = _check_p(p)
    if not isinstance(model, (keras.Sequential, _Functional)):
        raise ValueError("swap_batch_norm needs a functional or Sequential keras.Model; a "
                         f"subclassed model ({type(model).__name__}) must build its layers "
                         "with StochNorm itself.")
    swapped = []

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization) and not isinstance(
                layer, StochNorm):
            if config.get("renorm"):
                raise ValueError(f"layer {layer.name!r} uses batch renormalization, which "
                                 "StochNorm does not support.")
            layer_seed = None if seed is None else int(seed) + len(swapped)
            swapped.append(layer.name)
            return StochNorm(p=p, seed=layer_seed, **config)
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights:  # input layers may be renamed by the clone; nothing to copy
            continue
        target = new.get_layer(layer.name)
        target.set_weights(layer.get_weights())
        target.trainable = layer.trainable
        for mine, theirs in zip(layer.weights, target.weights):
            theirs.trainable = mine.trainable
    logging.info("stochnorm: %d batch-norm layers of %s replaced by StochNorm(p=%g).",
                 len(swapped), model.name, p)
    return new


def stochnorm_layers(model: keras.Model) -> list[str]:
    """Names of the :class:`StochNorm` layers of ``model``."""
    return [layer.name for layer in model.layers if isinstance(layer, StochNorm)]
