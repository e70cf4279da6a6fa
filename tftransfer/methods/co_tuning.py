"""Co-Tuning (``co_tuning``): train the kept source classifier too, toward the source
labels that the target labels translate to.

You, Kou, Jiang, Wang & Long, "Co-Tuning for Transfer Learning", NeurIPS 2020. Before
fine-tuning, the category relationship ``R[y_t, y_s] = p(y_s | y_t)`` is learned from the
starting point's source-classifier predictions on the target training images (the paper's
"direct approach")::

    R[t] = mean over the target training examples x of class t of softmax(c * s0(x))

``s0`` the source head on the pretrained backbone and ``c`` the calibration scale
(temperature scaling, Guo et al. 2017, which the paper applies so that the averaged
probabilities are calibrated): :func:`fit_calibration_scale` fits it by maximum likelihood
on logits with source labels (e.g. a held-out split of the source task), and ``c = 1`` (no
calibration) is the default when there are none. Then fine-tuning adds::

    lambda * mean_x CE(softmax(s(x)), R[y_t(x)])
      = -lambda * mean_x sum_j R[y_t(x), j] log softmax(s(x))_j

``s`` the source head on the current backbone, trained jointly (the paper's Co-Tuning).
Default ``lambda = 2.3`` (TLlib's default trade-off for Co-Tuning). The relationship is
computed once (:func:`relationship_from_model`, in inference mode); the step needs no
starting-point output: no extra forward pass, only the source head on the current features.

Use with ``model.fit``: :func:`wrap` (with the relationship, or target training data to
learn it) returns the :class:`tftransfer.methods.loss_terms.LossTermModel` to compile and
fit; the targets ``y`` are the sparse target labels (or one-hot rows). Backend-neutral
(``keras.ops``); the relationship is computed in NumPy.
"""
from typing import Any, Mapping

import keras
import numpy as np
from absl import logging
from keras import ops

from tftransfer import regularizers
from tftransfer.methods import loss_terms
from tftransfer.models.build import TransferModel
from tftransfer.methods.registry import MethodSpec, register

SPEC = register(MethodSpec(
    name="co_tuning", kind="loss",
    paper="You et al., Co-Tuning for Transfer Learning, NeurIPS 2020",
    hyper_parameters={"lambda": 2.3, "calibration_scale": 1.0},
    formula="lambda * CE(source head(x), p(y_s | y_t(x))), p(y_s | y_t) = mean over class y_t "
            "of the starting point's calibrated source predictions"))


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_calibration_scale(logits: np.ndarray, labels: np.ndarray, low: float = 1e-3,
                          high: float = 1e3, iterations: int = 100) -> float:
    """The temperature-scaling factor ``c`` that minimises the mean negative log-likelihood
    of ``softmax(c * logits)`` at ``labels`` (float64; the NLL is convex in ``c``, so its
    derivative ``mean(E_p[z] - z_y)`` is found by bisection on ``log c`` in [low, high])."""
    z = np.asarray(logits, np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must be (examples, classes) with one label per example, "
                         f"got {z.shape} and {labels.shape}.")
    picked = z[np.arange(len(labels)), labels]

    def slope(c):
        return float(np.mean(np.sum(_softmax(c * z) * z, axis=-1) - picked))

    lo, hi = np.log(low), np.log(high)
    if slope(np.exp(lo)) >= 0:
        return float(low)
    if slope(np.exp(hi)) <= 0:
        return float(high)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if slope(np.exp(mid)) > 0:
            hi = mid
        else:
            lo = mid
    return float(np.exp(0.5 * (lo + hi)))


def relationship(source_logits: np.ndarray, target_labels: np.ndarray, num_target_classes: int,
                 calibration_scale: float = 1.0) -> np.ndarray:
    """``R`` (num_target_classes x source classes, float32): row ``t`` is the mean of
    ``softmax(calibration_scale * source_logits)`` over the examples labelled ``t``. A
    class without examples gets the mean over all examples (logged)."""
    probabilities = _softmax(calibration_scale * np.asarray(source_logits, np.float64))
    labels = np.asarray(target_labels).astype(np.int64).reshape(-1)
    if labels.shape[0] != probabilities.shape[0]:
        raise ValueError(f"{probabilities.shape[0]} logits rows but {labels.shape[0]} labels.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_target_classes):
        raise ValueError(f"labels must lie in [0, {num_target_classes}), got "
                         f"[{labels.min()}, {labels.max()}].")
    rows, empty = [], []
    for t in range(num_target_classes):
        members = probabilities[labels == t]
        if len(members) == 0:
            empty.append(t)
            rows.append(probabilities.mean(axis=0))
        else:
            rows.append(members.mean(axis=0))
    if empty:
        logging.warning("Co-Tuning relationship: no training example of target classes %s; "
                        "their rows are the mean source prediction.", empty)
    return np.stack(rows).astype(np.float32)


def source_logits(source_model: keras.Model, data: Any,
                  max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, labels)`` as NumPy arrays: ``source_model`` (images -> source logits) in
    inference mode over ``data``, ``(images, labels)`` arrays or an iterable of batches."""
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], tuple):
        data = [data]
    logits, labels = [], []
    for i, (x, y) in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        logits.append(np.asarray(ops.convert_to_numpy(source_model(x, training=False))))
        labels.append(np.asarray(ops.convert_to_numpy(y)).reshape(-1))
    if not logits:
        raise ValueError("source_logits: data holds no batch.")
    return np.concatenate(logits), np.concatenate(labels)


def relationship_from_model(transfer_model: TransferModel, data: Any,
                            num_target_classes: int | None = None,
                            calibration_scale: float = 1.0,
                            max_batches: int | None = None) -> np.ndarray:
    """:func:`relationship` from the source-head predictions of ``transfer_model`` (a
    ``TransferModel``, at its starting point) on the target training ``data``."""
    num = num_target_classes or transfer_model.model.output.shape[-1]
    logits, labels = source_logits(transfer_model.source_model(), data, max_batches)
    return relationship(logits, labels, num, calibration_scale)


class CoTuningLoss(loss_terms.LossTerm):
    """``lambda * mean_x CE(softmax(source logits), R[y])``, ``R`` the relationship."""

    current_keys = (loss_terms.SOURCE_LOGITS,)

    def __init__(self, relationship_matrix: np.ndarray, lam: float = 2.3,
                 name: str = "co_tuning") -> None:
        matrix = np.asarray(relationship_matrix, np.float32)
        if matrix.ndim != 2 or np.any(matrix < 0) or not np.allclose(matrix.sum(1), 1,
                                                                     atol=1e-4):
            raise ValueError("the relationship must be a (target classes, source classes) "
                             "matrix of probability rows.")
        self.relationship = matrix
        self.lam = regularizers.check_strength(lam, "lambda")
        self.name = name

    def __call__(self, current: Mapping[str, Any], start: Mapping[str, Any], y: Any) -> Any:
        if y is None:
            raise ValueError("Co-Tuning needs the target labels y.")
        matrix = ops.convert_to_tensor(self.relationship)
        y = ops.convert_to_tensor(y)
        if len(y.shape) >= 2 and y.shape[-1] == self.relationship.shape[0] and y.shape[-1] > 1:
            soft = ops.matmul(ops.cast(y, "float32"), matrix)  # one-hot (or soft) rows
        else:
            soft = ops.take(matrix, ops.reshape(ops.cast(y, "int32"), (-1,)), axis=0)
        log_q = ops.log_softmax(ops.cast(current[loss_terms.SOURCE_LOGITS], "float32"))
        return self.lam * ops.mean(-ops.sum(soft * log_q, axis=-1))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "lam": self.lam}


def wrap(transfer_model: TransferModel, lam: float = 2.3,
         relationship_matrix: np.ndarray | None = None, relationship_data: Any = None,
         calibration_scale: float = 1.0,
         max_batches: int | None = None) -> loss_terms.LossTermModel:
    """The :class:`~tftransfer.methods.loss_terms.LossTermModel` of Co-Tuning around
    ``transfer_model`` (a ``TransferModel`` with its source head): with
    ``relationship_matrix``, or one learned now from ``relationship_data`` (target training
    batches) by :func:`relationship_from_model`."""
    if relationship_matrix is None:
        if relationship_data is None:
            raise ValueError("Co-Tuning needs relationship_matrix or relationship_data (the "
                             "target training set) to learn p(y_s | y_t).")
        relationship_matrix = relationship_from_model(transfer_model, relationship_data,
                                                      calibration_scale=calibration_scale,
                                                      max_batches=max_batches)
    return loss_terms.LossTermModel.from_transfer_model(
        transfer_model, [CoTuningLoss(relationship_matrix, lam)])
