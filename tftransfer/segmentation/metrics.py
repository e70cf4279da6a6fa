"""Mean intersection over union, the segmentation score of Li et al. 2018, Table 4.

Over the pixels whose true label is not ``ignore_label`` (255 in Cityscapes and SBD), the
confusion matrix ``C[i, j]`` counts pixels of true class ``i`` predicted as ``j``; then

    IoU_c = C[c, c] / (sum_j C[c, j] + sum_i C[i, c] - C[c, c])
    mIoU  = mean of IoU_c over the classes c present (a non-zero denominator)

Predictions equal to ``ignore_label`` never occur (a network predicts a class), and true
labels outside ``[0, num_classes)`` other than ``ignore_label`` are an error.
"""
from typing import Any

import keras
import numpy as np

IGNORE_LABEL = 255


def confusion_matrix(labels: Any, predictions: Any, num_classes: int,
                     ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """``int64 [num_classes, num_classes]``: rows true class, columns predicted class."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions.")
    keep = labels != ignore_label
    labels, predictions = labels[keep], predictions[keep]
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(f"labels {sorted(set(bad.tolist()))[:5]} are outside 0..{num_classes - 1}"
                         f" and not the ignore label {ignore_label}.")
    if predictions.size and (predictions.min() < 0 or predictions.max() >= num_classes):
        raise ValueError(f"predictions must be classes 0..{num_classes - 1}.")
    return np.bincount(labels * num_classes + predictions,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """``float64 [num_classes]``: IoU of each class, NaN where the class never occurs
    (neither true nor predicted)."""
    confusion = np.asarray(confusion, np.float64)
    hits = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """The mean of :func:`iou_per_class` over the classes that occur."""
    iou = iou_per_class(confusion)
    if np.all(np.isnan(iou)):
        raise ValueError("no pixel was counted: every label is the ignore label.")
    return float(np.nanmean(iou))


def keras_mean_iou(num_classes: int, ignore_label: int = IGNORE_LABEL,
                   name: str = "mean_iou") -> keras.metrics.MeanIoU:
    """Keras' streaming metric with the same definition, for ``model.compile(metrics=...)``:
    it takes integer label maps and logits (``sparse_y_pred=False``: argmax over the last
    axis)."""
    return keras.metrics.MeanIoU(num_classes, name=name, ignore_class=ignore_label,
                                 sparse_y_true=True, sparse_y_pred=False)
