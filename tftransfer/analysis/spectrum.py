"""Penultimate-feature spectra and transferability across source checkpoints (the
pre-training-dynamics analysis of Liu et al. 2019, "Towards Understanding the
Transferability of Deep Representations", Figure 9, and of the study of feature extraction
vs fine-tuning across pretraining epochs, which relates them to the singular values of the
penultimate features).

- ``singular_values(F)``: singular values of the N x D feature matrix (rows = examples),
  centred by default; :func:`tftransfer.analysis.plots.plot_spectrum` normalises them by
  the largest.
- ``probe_and_finetune``: for one source checkpoint, the target test accuracy of (a) the
  package's linear probe on frozen features
  (:func:`tftransfer.models.feature_extraction.feature_baseline`, logistic regression on
  L2-normalised features) and (b) fine-tuning the whole network with a fresh head. Run over
  checkpoints saved during source training (e.g.
  ``keras.callbacks.ModelCheckpoint("ckpt_{epoch:02d}.keras")``) to see how feature
  extraction and fine-tuning evolve with pretraining.
"""
from typing import Any, Mapping

import keras
import numpy as np
import pandas as pd

from tftransfer.analysis.source_task import feature_model
from tftransfer.batching import batches
from tftransfer.models.feature_extraction import feature_baseline


def feature_matrix(features: keras.Model, data: Any, batch_size: int = 128) -> np.ndarray:
    """Stacks ``features(x)`` over ``data`` into an [N, D] float64 array."""
    rows = [np.asarray(features(x, training=False), np.float64).reshape(x.shape[0], -1)
            for x, _ in batches(data, batch_size)]
    if not rows:
        raise ValueError("the data yielded no examples.")
    return np.concatenate(rows)


def singular_values(features: np.ndarray, center: bool = True) -> np.ndarray:
    """Singular values (descending) of the feature matrix, optionally column-centred."""
    features = np.asarray(features, np.float64)
    if center:
        features = features - features.mean(axis=0, keepdims=True)
    return np.linalg.svd(features, compute_uv=False)


def spectrum_frame(spectra: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Long table (checkpoint, index, singular_value, normalized) from ``{name: values}``."""
    rows = [(name, i, float(s), float(s / values[0]) if values[0] > 0 else 0.0)
            for name, values in spectra.items() for i, s in enumerate(values)]
    return pd.DataFrame(rows, columns=["checkpoint", "index", "singular_value", "normalized"])


def _fit_and_score(model, train, test, optimizer, epochs, batch_size):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    model.fit(train[0], train[1], epochs=epochs, batch_size=batch_size, verbose=0)
    return float(model.evaluate(test[0], test[1], batch_size=batch_size, verbose=0)[1])


def probe_and_finetune(source_model: keras.Model, train: tuple[np.ndarray, np.ndarray],
                       test: tuple[np.ndarray, np.ndarray], num_classes: int,
                       feature_layer: str = "avg_pool", epochs: int = 5,
                       finetune_lr: float = 0.01, probe_lr: float = 0.01,
                       batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    """``{"probe_accuracy", "finetune_accuracy"}`` on ``test`` for one source checkpoint.

    ``train``/``test`` are ``(x, y)`` arrays. The probe is ``feature_baseline``'s logistic
    regression (Adam, ``epochs`` passes, ``probe_lr``) on frozen features; fine-tuning
    trains a copy of the whole network with a fresh head (SGD, momentum 0.9). ``source_model`` itself is left unchanged.
    """
    features = feature_model(source_model, feature_layer)
    probe = feature_baseline(features, train, test, num_classes, classifier="logistic",
                             batch_size=batch_size, verbose=False, epochs=epochs,
                             learning_rate=probe_lr, seed=seed)

    keras.utils.set_random_seed(seed)
    backbone = keras.models.clone_model(features)
    backbone.set_weights(features.get_weights())
    logits = keras.layers.Dense(num_classes, name="target_head")(backbone.output)
    target = keras.Model(backbone.inputs, logits)
    finetune_accuracy = _fit_and_score(target, train, test,
                                       keras.optimizers.SGD(finetune_lr, momentum=0.9),
                                       epochs, batch_size)
    return {"probe_accuracy": probe["test_accuracy"], "finetune_accuracy": finetune_accuracy}

