"""The frozen-features baseline ("DeCAF", "CNN-SVM"; Hong, transfer lecture, see
docs/recipe.md): a linear classifier on L2-normalised penultimate features of the source
network.

``phi(x) = f(x) / max(||f(x)||_2, 1e-12)`` with ``f`` the globally pooled features
(``TransferModel.feature_model()``). The classifier is either

- multinomial logistic regression in Keras: logits ``phi W + b``, minimising the mean
  cross-entropy ``+ l2/2 * ||W||^2`` (the package's L2 convention), or
- a linear SVM (scikit-learn ``LinearSVC``, one-vs-rest; install ``scikit-learn``).

Inputs are already preprocessed images (see :mod:`tftransfer.models.preprocessing`), given
as ``(images, labels)`` NumPy arrays or a ``tf.data.Dataset`` of ``(images, labels)``
batches.
"""
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer.batching import labelled_batches, num_batches
from tftransfer.extras import install_hint
from tftransfer.regularizers import L2

CLASSIFIERS = ("logistic", "svm")


def l2_normalize(features: np.ndarray, epsilon: float = 1e-12) -> np.ndarray:
    """Rows of ``features`` divided by their Euclidean norm (at least ``epsilon``)."""
    features = np.asarray(features, np.float32)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norms, epsilon)


def _batches(data, batch_size):
    """``(number of batches or None, iterator of (images, labels) NumPy batches)``."""
    if not isinstance(data, (tf.data.Dataset, tuple, list)):
        raise ValueError("data must be (images, labels) arrays or a tf.data.Dataset of "
                         f"(images, labels) batches, got {type(data).__name__}.")
    return num_batches(data, batch_size), (
        (np.asarray(x), np.asarray(y)) for x, y in labelled_batches(data, batch_size))


def extract_features(feature_model: keras.Model, data: Any, batch_size: int = 64,
                     verbose: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(phi, labels)``: L2-normalised features ``[N, D]`` of ``data`` and its labels."""
    total, batches = _batches(data, batch_size)
    progbar = keras.utils.Progbar(total, unit_name="batch") if verbose else None
    features, labels = [], []
    for x, y in batches:
        features.append(np.asarray(feature_model.predict_on_batch(x)))
        labels.append(y.reshape(-1))
        if progbar is not None:
            progbar.add(1)
    if not features:
        raise ValueError("extract_features: the data is empty.")
    features = np.concatenate(features).reshape(sum(len(f) for f in features), -1)
    return l2_normalize(features), np.concatenate(labels).astype(np.int64)


def fit_logistic_regression(features: np.ndarray, labels: np.ndarray, num_classes: int,
                            l2: float = 1e-4, epochs: int = 100, learning_rate: float = 0.01,
                            batch_size: int = 256, seed: int | None = None,
                            verbose: int = 0) -> keras.Model:
    """Keras multinomial logistic regression (Adam, ``epochs`` passes over shuffled
    mini-batches, run as one compiled loop); returns the ``Dense`` logits model.
    ``seed`` (optional) seeds Python, NumPy and Keras (``keras.utils.set_random_seed``)."""
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels).reshape(-1)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((features.shape[-1],), name="features")
    logits = keras.layers.Dense(num_classes, kernel_regularizer=L2(l2),
                                kernel_initializer=keras.initializers.Zeros(),
                                name="logistic")(inputs)
    model = keras.Model(inputs, logits, name="logistic_regression")
    steps = -(-len(features) // batch_size)  # batches per epoch
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps)
    data = (tf.data.Dataset.from_tensor_slices((features, labels))
            .shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size).repeat())
    model.fit(data, epochs=1, steps_per_epoch=epochs * steps, verbose=verbose)
    return model


def fit_linear_svm(features: np.ndarray, labels: np.ndarray, C: float = 1.0,
                   seed: int = 0) -> Any:
    """scikit-learn ``LinearSVC(C)`` (one-vs-rest, squared hinge) fitted on the features."""
    try:
        from sklearn.svm import LinearSVC
    except ImportError as error:
        raise ImportError(f"The linear SVM needs scikit-learn: {install_hint('sklearn')}. "
                          "The 'logistic' classifier needs nothing extra.") from error
    return LinearSVC(C=C, random_state=seed).fit(features, labels)


def feature_baseline(feature_model: keras.Model, train: Any, test: Any, num_classes: int,
                     classifier: str = "logistic", batch_size: int = 64, verbose: bool = True,
                     **classifier_kwargs: Any) -> dict[str, Any]:
    """Extracts features of ``train`` and ``test``, fits ``classifier`` on train, and returns
    ``{"classifier", "train_accuracy", "test_accuracy", "num_train", "num_test",
    "feature_dim"}``. ``classifier_kwargs`` go to :func:`fit_logistic_regression` or
    :func:`fit_linear_svm`."""
    if classifier not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {classifier!r}; expected one of {CLASSIFIERS}.")
    if verbose:
        logging.info("Extracting train features")
    x_train, y_train = extract_features(feature_model, train, batch_size, verbose)
    if verbose:
        logging.info("Extracting test features")
    x_test, y_test = extract_features(feature_model, test, batch_size, verbose)
    if classifier == "logistic":
        model = fit_logistic_regression(x_train, y_train, num_classes, **classifier_kwargs)

        def predict(x):
            return np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=-1)
    else:
        predict = fit_linear_svm(x_train, y_train, **classifier_kwargs).predict
    result = {"classifier": classifier,
              "train_accuracy": float(np.mean(predict(x_train) == y_train)),
              "test_accuracy": float(np.mean(predict(x_test) == y_test)),
              "num_train": int(len(y_train)), "num_test": int(len(y_test)),
              "feature_dim": int(x_train.shape[-1])}
    if verbose:
        logging.info(f"{classifier}: train accuracy {result['train_accuracy']:.4f}, "
                     f"test accuracy {result['test_accuracy']:.4f}")
    return result
