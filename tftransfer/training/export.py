"""Exporting the inference model: ``model.export`` (SavedModel), reloaded and checked.

The exported signature ``serve`` maps preprocessed inputs (what the test pipeline feeds the
model, see :mod:`tftransfer.training.data`) to logits; the frozen starting point and the
optimizer are not part of it. The export goes to a temporary directory renamed into place,
so ``<output_dir>/saved_model`` is either complete or absent.
"""
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf


def export_and_check(model, directory, batch, chief=True):
    """Exports ``model`` to ``directory``, reloads it and returns the largest absolute
    difference between the reloaded and the in-memory logits on ``batch``. Non-chief tasks
    export to a scratch directory that is then removed (saving may need every task)."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        target = os.path.join(scratch, "saved_model")
        model.export(target, format="tf_saved_model", verbose=False)
        reloaded = tf.saved_model.load(target)
        expected = np.asarray(model(batch, training=False), np.float32)
        got = np.asarray(reloaded.serve(batch), np.float32)
        if chief:
            if os.path.exists(directory):
                shutil.rmtree(directory)
            os.replace(target, directory)
        return float(np.max(np.abs(expected - got)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
