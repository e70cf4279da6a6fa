"""Batch Spectral Shrinkage (``bss``): shrink the smallest singular values of the batch's
penultimate features.

Chen, Wang, Fu, Long & Wang, "Catastrophic Forgetting Meets Negative Transfer: Batch
Spectral Shrinkage for Safe Transfer Learning", NeurIPS 2019. Added to the data loss::

    eta * sum_{i=1..k} sigma_{-i}^2

``sigma_{-1} <= sigma_{-2} <= ...`` the smallest singular values of the batch's feature
matrix ``F`` (batch x feature dimension, the input of the classifier), of which there are
``min(batch, dimension)``. Defaults ``eta = 1e-3``, ``k = 1`` (the paper's). The values come
from an SVD of ``F`` each step (``keras.ops.svd``, its gradient ``2 sigma_i u_i v_i^T``);
no starting-point output, no extra forward pass. Under a ``tf.distribute`` strategy, ``F``
is each replica's batch.

Use with ``model.fit``: :func:`wrap` returns the
:class:`tftransfer.methods.loss_terms.LossTermModel` to compile and fit; or put
:class:`BatchSpectralShrinkage` beside other terms. Backend-neutral (``keras.ops``).
"""
from typing import Any, Mapping

import keras
from keras import ops

from tftransfer import regularizers
from tftransfer.methods import loss_terms
from tftransfer.models.build import TransferModel
from tftransfer.methods.registry import MethodSpec, register

SPEC = register(MethodSpec(
    name="bss", kind="loss",
    paper="Chen et al., Catastrophic Forgetting Meets Negative Transfer: Batch Spectral "
          "Shrinkage for Safe Transfer Learning, NeurIPS 2019",
    hyper_parameters={"eta": 1e-3, "k": 1},
    formula="eta * sum_{i=1..k} sigma_{-i}(F)^2, F the batch's penultimate features"))


class BatchSpectralShrinkage(loss_terms.LossTerm):
    """``eta * sum of the k smallest squared singular values`` of the batch's features."""

    current_keys = (loss_terms.FEATURES,)

    def __init__(self, eta: float = 1e-3, k: int = 1, name: str = "bss") -> None:
        self.eta = regularizers.check_strength(eta, "eta")
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        self.k = int(k)
        self.name = name

    def __call__(self, current: Mapping[str, Any], start: Mapping[str, Any], y: Any) -> Any:
        features = ops.cast(current[loss_terms.FEATURES], "float32")
        features = ops.reshape(features, (ops.shape(features)[0], -1))
        # Singular values in descending order; there are min(batch, dimension) of them.
        sigma = ops.svd(features, full_matrices=False, compute_uv=False)
        return self.eta * ops.sum(ops.square(sigma[..., -self.k:]))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "eta": self.eta, "k": self.k}


def wrap(transfer_model: TransferModel | keras.Model, eta: float = 1e-3,
         k: int = 1) -> loss_terms.LossTermModel:
    """The :class:`~tftransfer.methods.loss_terms.LossTermModel` of BSS around
    ``transfer_model`` (a ``TransferModel`` or a Keras model)."""
    model = getattr(transfer_model, "model", transfer_model)
    return loss_terms.LossTermModel(model, [BatchSpectralShrinkage(eta, k)])
