"""Evaluating on multi-crop test inputs: average the predictions of the crops of an image.

For inputs ``[B, n_crops, h, w, 3]`` the model sees ``B * n_crops`` images; the default
averages **probabilities**, ``p = 1/n sum_k softmax(z_k)``; ``average="logits"`` averages
logits instead, ``z = 1/n sum_k z_k``. Single-crop inputs ``[B, h, w, 3]`` pass through.

The model runs as one compiled inference graph per model (:func:`inference`), on ``B``
images per call whatever the number of crops (the ``B * n`` crops go through in ``n``
calls): a 10-crop pass costs ten centre-crop passes (``benchmarks/bench_eval.py``), and
memory stays that of a ``B``-image call (an eager functional call holds every activation
until it returns: 23 GiB for 160 ResNet-50 crops at 224x224).
"""
import weakref

import numpy as np
import tensorflow as tf

_INFERENCE = weakref.WeakKeyDictionary()


def inference(model):
    """``model(x, training=False)`` as a ``tf.function``, made once per model (held
    weakly: it does not keep the model alive)."""
    compiled = _INFERENCE.get(model)
    if compiled is None:
        ref = weakref.ref(model)
        compiled = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True,
                               autograph=False)
        _INFERENCE[model] = compiled
    return compiled


def average_crops(logits, num_crops, average="probabilities"):
    """``[B * n, K]`` logits of consecutive crops -> ``[B, K]`` averaged scores."""
    if average not in ("probabilities", "logits"):
        raise ValueError(f"average must be 'probabilities' or 'logits', got {average!r}.")
    scores = tf.nn.softmax(logits, axis=-1) if average == "probabilities" else logits
    return tf.reduce_mean(tf.reshape(scores, [-1, num_crops, tf.shape(scores)[-1]]), axis=1)


def predict_crops(model, images, average="probabilities"):
    """Scores ``[B, K]`` for ``[B, n, h, w, 3]`` (averaged) or ``[B, h, w, 3]`` images."""
    forward = inference(model)
    if images.shape.rank == 4:
        logits = forward(images)
        return tf.nn.softmax(logits, axis=-1) if average == "probabilities" else logits
    num_crops = images.shape[1]
    flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[2:]], axis=0))
    logits = tf.concat([forward(chunk) for chunk in tf.split(flat, num_crops)], axis=0)
    return average_crops(logits, num_crops, average)


def crop_accuracy(model, dataset, average="probabilities"):
    """Top-1 accuracy of ``model`` over ``(images, labels)`` batches, crops averaged."""
    correct = total = 0
    for images, labels in dataset:
        predicted = np.argmax(predict_crops(model, images, average).numpy(), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return correct / max(total, 1)
