"""Accuracy and cross-entropy of a model on evaluation batches, crops averaged.

The scores are those of :func:`tftransfer.data.evaluation.predict_crops` (probabilities
averaged over the crops of an image), so the accuracy is exactly
:func:`tftransfer.data.evaluation.crop_accuracy`'s; the cross-entropy is the mean over the
images of ``-log p[label]`` of those probabilities (float64, ``p`` floored at
:data:`FLOOR`). Model selection records both on the validation split (Li et al. 2018,
Section 4.1; :mod:`tftransfer.training.selection`).
"""
import numpy as np

from tftransfer.data.evaluation import predict_crops

FLOOR = 1e-12


def accuracy_and_cross_entropy(model, dataset):
    """``(accuracy, mean cross-entropy)`` of ``model`` over ``(images, labels)`` batches."""
    correct = total = 0
    loss = 0.0
    for images, labels in dataset:
        scores = predict_crops(model, images).numpy()
        labels = labels.numpy()
        correct += int(np.sum(np.argmax(scores, axis=-1) == labels))
        picked = scores.astype(np.float64)[np.arange(len(labels)), labels]
        loss += float(-np.sum(np.log(np.maximum(picked, FLOOR))))
        total += len(labels)
    return correct / max(total, 1), loss / max(total, 1)
