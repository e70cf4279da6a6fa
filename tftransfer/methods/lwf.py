"""Learning without Forgetting (``lwf``): keep the source classifier's predictions of the
fine-tuned network close to the starting point's.

Li & Hoiem, "Learning without Forgetting", ECCV 2016 (and TPAMI 2018). Added to the data
loss::

    lambda * T^2 * mean_x KL(softmax(s0(x) / T) || softmax(s(x) / T))

``s`` the kept source classifier (``TransferModel.source_head``) on the current backbone,
trained jointly with the rest as in the paper; ``s0`` the source classifier on the starting
point. KL differs from the paper's cross-entropy with the recorded soft targets by the
entropy of ``softmax(s0 / T)``, a constant of ``w``: same gradient. ``T^2`` keeps the
gradient's scale independent of ``T`` (Hinton et al. 2015). Defaults ``lambda = 1``,
``T = 2`` (the paper's ``lambda_o`` and temperature).

Starting-point logits: computed **per step** by a frozen copy of the pretrained network with
its source head (inference mode, cloned once): the paper records them once per training
image, which equals this without data augmentation and is exact here with it. Cost: one
extra forward pass (no backward) per step, plus the source head on the current features.

Use with ``model.fit``: :func:`wrap` returns the
:class:`tftransfer.methods.loss_terms.LossTermModel` to compile and fit. Backend-neutral.
"""
from typing import Any, Mapping

import keras
from keras import ops

from tftransfer import regularizers
from tftransfer.methods import loss_terms
from tftransfer.models.build import TransferModel
from tftransfer.methods.registry import MethodSpec, register

SPEC = register(MethodSpec(
    name="lwf", kind="loss", paper="Li & Hoiem, Learning without Forgetting, ECCV 2016",
    hyper_parameters={"lambda": 1.0, "temperature": 2.0},
    formula="lambda * T^2 * KL(softmax(s0(x)/T) || softmax(s(x)/T)), s the source head on "
            "the current backbone, s0 on the starting point"))


class LearningWithoutForgetting(loss_terms.LossTerm):
    """``lambda * T^2 * mean_x KL(softmax(s0/T) || softmax(s/T))``."""

    current_keys = (loss_terms.SOURCE_LOGITS,)
    start_keys = (loss_terms.SOURCE_LOGITS,)

    def __init__(self, lam: float = 1.0, temperature: float = 2.0, name: str = "lwf") -> None:
        self.lam = regularizers.check_strength(lam, "lambda")
        self.temperature = float(temperature)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        self.name = name

    def __call__(self, current: Mapping[str, Any], start: Mapping[str, Any], y: Any) -> Any:
        t = self.temperature
        log_p = ops.log_softmax(ops.cast(current[loss_terms.SOURCE_LOGITS], "float32") / t)
        log_p0 = ops.log_softmax(ops.cast(start[loss_terms.SOURCE_LOGITS], "float32") / t)
        kl = ops.sum(ops.exp(log_p0) * (log_p0 - log_p), axis=-1)
        return self.lam * t * t * ops.mean(kl)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "lam": self.lam, "temperature": self.temperature}


def wrap(transfer_model: TransferModel | keras.Model, lam: float = 1.0,
         temperature: float = 2.0) -> loss_terms.LossTermModel:
    """The :class:`~tftransfer.methods.loss_terms.LossTermModel` of LwF around
    ``transfer_model`` (a ``TransferModel`` built from a pretrained source: it needs its
    ``source_head``)."""
    return loss_terms.LossTermModel.from_transfer_model(
        transfer_model, [LearningWithoutForgetting(lam, temperature)])
