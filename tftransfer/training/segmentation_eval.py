"""Evaluation of a segmentation run: the chosen inference, the confusion matrix over the
split, mIoU, per-class IoU, pixel accuracy and cross-entropy, and ``confusion_matrix.csv``.

Each evaluation batch ``(images [B, H, W, C], masks [B, H, W])`` goes through the inference
of ``--seg_eval`` (:mod:`tftransfer.segmentation.inference`: whole image; sliding
``--eval_crop`` windows with ``--eval_stride``; multi-scale ``--eval_scales`` (+ mirror,
``--eval_flip``), each scale whole or sliding) giving probabilities ``p``; the predicted
class is ``argmax p``. Over the whole split, with ``C`` the confusion matrix of
:func:`tftransfer.segmentation.metrics.confusion_matrix` summed over the batches (pixels of
label 255 left out):

    mIoU = mean over the classes present of C[c,c] / (row_c + col_c - C[c,c])
    pixel accuracy = trace(C) / sum(C)
    cross-entropy = mean over the counted pixels of -log max(p[y], 1e-12)
"""
import csv

import numpy as np
import tensorflow as tf

from tftransfer.io_utils import atomic_path
from tftransfer.segmentation import inference, metrics

FLOOR = 1e-12
CSV_NAME = "confusion_matrix.csv"


def predictor(config, model):
    """``images -> probabilities`` of ``config``'s ``--seg_eval`` for ``model``."""
    t = config.task
    crop, stride = t.window(config), t.stride(config)

    def one_scale(images):
        if crop is None:
            return inference.whole_image(model, images)
        return inference.sliding_window(model, images, crop, stride)

    if t.seg_eval == "multi_scale":
        return lambda images: inference.multi_scale(one_scale, images, t.scales(),
                                                    t.eval_flip)
    return one_scale


def evaluate(predict, dataset, num_classes, ignore_label=metrics.IGNORE_LABEL):
    """``(confusion int64 [K, K], cross_entropy, num_images)`` of ``predict`` over the
    ``(images, masks)`` batches of ``dataset`` (module docstring)."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    loss, counted, images_seen = 0.0, 0, 0
    for images, masks in dataset:
        probabilities = np.asarray(predict(images), np.float64)
        masks = np.asarray(masks).astype(np.int64)
        confusion += metrics.confusion_matrix(masks, np.argmax(probabilities, axis=-1),
                                              num_classes, ignore_label)
        keep = masks != ignore_label
        picked = np.take_along_axis(probabilities, np.where(keep, masks, 0)[..., None],
                                    axis=-1)[..., 0]
        loss += float(-np.sum(np.log(np.maximum(picked[keep], FLOOR))))
        counted += int(keep.sum())
        images_seen += len(masks)
    return confusion, loss / max(counted, 1), images_seen


def fields(confusion, cross_entropy, class_names):
    """The ``results.json`` fields of a confusion matrix: ``mean_iou``, ``iou_per_class``
    (``{name: IoU}``, None for a class absent from truth and prediction),
    ``pixel_accuracy`` (also ``accuracy``, the key the driver's records share),
    ``cross_entropy``, ``class_names``."""
    iou = metrics.iou_per_class(confusion)
    total = int(confusion.sum())
    accuracy = float(np.trace(confusion)) / total if total else float("nan")
    return {"mean_iou": metrics.mean_iou(confusion),
            "iou_per_class": {name: (None if np.isnan(v) else float(v))
                              for name, v in zip(class_names, iou)},
            "pixel_accuracy": accuracy, "accuracy": accuracy,
            "cross_entropy": cross_entropy, "class_names": list(class_names),
            "counted_pixels": total}


def write_confusion_csv(path, confusion, class_names):
    """``path``: a header ``true \\ predicted, <names>`` and one row per true class (its
    name, then the pixel counts), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, np.asarray(confusion)):
            out.writerow([name, *[int(v) for v in row]])


def read_confusion_csv(path):
    """``(class_names, confusion int64 [K, K])`` of a file of :func:`write_confusion_csv`."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    return names, np.array([[int(v) for v in row[1:]] for row in rows[1:]], np.int64)


def first_images(dataset):
    """The images of the first evaluation batch (the export check's input)."""
    images, _ = next(iter(dataset))
    return tf.convert_to_tensor(images)
