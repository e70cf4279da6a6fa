"""Penultimate-feature spectra and transferability across source checkpoints (papers/003;
papers/000 Figure 9).

- ``singular_values(F)``: singular values of the N x D feature matrix (rows = examples),
  centred by default; the plot normalises them by the largest.
- ``probe_and_finetune``: for one source checkpoint, the target test accuracy of (a) a
  linear probe (softmax regression trained on the frozen features) and (b) fine-tuning the
  whole network with a fresh head. Run over checkpoints saved during source training (e.g.
  ``keras.callbacks.ModelCheckpoint("ckpt_{epoch:02d}.keras")``) to see how feature
  extraction and fine-tuning evolve with pretraining.
"""
import keras
import numpy as np
import pandas as pd

from tftransfer.analysis._io import new_figure, save_figure, write_csv
from tftransfer.batching import batches
from tftransfer.analysis.source_task import feature_model


def feature_matrix(features, data, batch_size=128):
    """Stacks ``features(x)`` over ``data`` into an [N, D] float64 array."""
    rows = [np.asarray(features(x, training=False), np.float64).reshape(x.shape[0], -1)
            for x, _ in batches(data, batch_size)]
    if not rows:
        raise ValueError("the data yielded no examples.")
    return np.concatenate(rows)


def singular_values(features, center=True):
    """Singular values (descending) of the feature matrix, optionally column-centred."""
    features = np.asarray(features, np.float64)
    if center:
        features = features - features.mean(axis=0, keepdims=True)
    return np.linalg.svd(features, compute_uv=False)


def spectrum_frame(spectra):
    """Long table (checkpoint, index, singular_value, normalized) from ``{name: values}``."""
    rows = [(name, i, float(s), float(s / values[0]) if values[0] > 0 else 0.0)
            for name, values in spectra.items() for i, s in enumerate(values)]
    return pd.DataFrame(rows, columns=["checkpoint", "index", "singular_value", "normalized"])


def plot_spectrum(frame, png_path, csv_path=None, top=None):
    """Normalised singular values (log scale) against index, one line per checkpoint."""
    fig, ax = new_figure(6.0, 4.0)
    for name, sub in frame.groupby("checkpoint", sort=False):
        sub = sub if top is None else sub[sub["index"] < top]
        ax.plot(sub["index"] + 1, sub["normalized"], label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("sigma_i / sigma_1")
    ax.set_title("Spectrum of penultimate features")
    ax.legend(fontsize=7)
    if csv_path:
        write_csv(frame, csv_path)
    return save_figure(fig, png_path)


def _fit_and_score(model, train, test, optimizer, epochs, batch_size):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    model.fit(train[0], train[1], epochs=epochs, batch_size=batch_size, verbose=0)
    return float(model.evaluate(test[0], test[1], batch_size=batch_size, verbose=0)[1])


def probe_and_finetune(source_model, train, test, num_classes, feature_layer="avg_pool",
                       epochs=5, finetune_lr=0.01, probe_lr=0.01, batch_size=64, seed=0):
    """``{"probe_accuracy", "finetune_accuracy"}`` on ``test`` for one source checkpoint.

    ``train``/``test`` are ``(x, y)`` arrays. The probe trains a Dense head (Adam) on frozen
    features; fine-tuning trains a copy of the whole network with a fresh head (SGD,
    momentum 0.9). ``source_model`` itself is left unchanged.
    """
    keras.utils.set_random_seed(seed)
    features = feature_model(source_model, feature_layer)
    f_train = feature_matrix(features, train[0], batch_size).astype("float32")
    f_test = feature_matrix(features, test[0], batch_size).astype("float32")
    probe = keras.Sequential([keras.Input(f_train.shape[1:]), keras.layers.Dense(num_classes)])
    probe_acc = _fit_and_score(probe, (f_train, train[1]), (f_test, test[1]),
                               keras.optimizers.Adam(probe_lr), epochs, batch_size)

    keras.utils.set_random_seed(seed)
    backbone = keras.models.clone_model(features)
    backbone.set_weights(features.get_weights())
    logits = keras.layers.Dense(num_classes, name="target_head")(backbone.output)
    target = keras.Model(backbone.inputs, logits)
    finetune_acc = _fit_and_score(target, train, test,
                                  keras.optimizers.SGD(finetune_lr, momentum=0.9), epochs,
                                  batch_size)
    return {"probe_accuracy": probe_acc, "finetune_accuracy": finetune_acc}


def plot_transfer(frame, png_path, csv_path=None):
    """Probe and fine-tune accuracy against checkpoint (rows of ``frame``), PNG and CSV."""
    fig, ax = new_figure(6.0, 4.0)
    x = np.arange(len(frame))
    ax.plot(x, 100 * frame["probe_accuracy"], marker="o", label="linear probe (frozen)")
    ax.plot(x, 100 * frame["finetune_accuracy"], marker="s", label="fine-tune")
    ax.set_xticks(x)
    ax.set_xticklabels(frame["checkpoint"], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title("Transfer vs source checkpoint")
    ax.legend()
    if csv_path:
        write_csv(frame, csv_path)
    return save_figure(fig, png_path)
