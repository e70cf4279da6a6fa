"""Evaluating on multi-crop test inputs: average the predictions of the crops of an image.

For inputs ``[B, n_crops, h, w, 3]`` the model sees ``B * n_crops`` images; the default
averages **probabilities**, ``p = 1/n sum_k softmax(z_k)``; ``average="logits"`` averages
logits instead, ``z = 1/n sum_k z_k``. Single-crop inputs ``[B, h, w, 3]`` pass through.
"""
import numpy as np
import tensorflow as tf


def average_crops(logits, num_crops, average="probabilities"):
    """``[B * n, K]`` logits of consecutive crops -> ``[B, K]`` averaged scores."""
    if average not in ("probabilities", "logits"):
        raise ValueError(f"average must be 'probabilities' or 'logits', got {average!r}.")
    scores = tf.nn.softmax(logits, axis=-1) if average == "probabilities" else logits
    return tf.reduce_mean(tf.reshape(scores, [-1, num_crops, tf.shape(scores)[-1]]), axis=1)


def predict_crops(model, images, average="probabilities"):
    """Scores ``[B, K]`` for ``[B, n, h, w, 3]`` (averaged) or ``[B, h, w, 3]`` images."""
    if images.shape.rank == 4:
        logits = model(images, training=False)
        return tf.nn.softmax(logits, axis=-1) if average == "probabilities" else logits
    num_crops = images.shape[1]
    flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[2:]], axis=0))
    return average_crops(model(flat, training=False), num_crops, average)


def crop_accuracy(model, dataset, average="probabilities"):
    """Top-1 accuracy of ``model`` over ``(images, labels)`` batches, crops averaged."""
    correct = total = 0
    for images, labels in dataset:
        predicted = np.argmax(predict_crops(model, images, average).numpy(), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return correct / max(total, 1)
