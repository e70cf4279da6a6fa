"""Diagonal Fisher information of a classifier that outputs logits (L2-SP-Fisher of Li et
al. 2018, Section 3; docs/recipe.md).

    F_j = 1/m * sum_i sum_k p_k(x_i) * (d/dw_j log p_k(x_i))**2,   p = softmax(model(x))

the inner sum being the expectation over the model's *own* predictive distribution (labels
of the data are ignored). ``mode="exact"`` sums over all K classes (K backward passes per
batch, vectorised); ``mode="sampled"`` draws ``num_samples`` labels ``k ~ p(x_i)`` per
example and averages their squared scores, an unbiased estimate costing one backward pass
per sample. Per-example gradients are the single-example gradient vectorised over the
examples with ``tf.vectorized_map`` (:func:`squared_gradients`); batch norm runs in
inference mode. Memory grows with ``batch_size * R`` times the number of parameters (R =
classes in exact mode, ``num_samples`` in sampled mode): lower ``batch_size`` for large
models. Optionally ``F <- min(F, clip) + epsilon``.

The result maps Keras 3 ``variable.path`` to a NumPy array of the variable's shape, the form
``tftransfer.penalize(..., fisher=...)`` takes; :func:`save` / :func:`load` store it as .npz.

TensorFlow backend only: the vectorised per-example gradients (``tf.GradientTape`` and
``tf.vectorized_map`` inside one ``tf.function``) have no ``keras.ops`` equivalent. On JAX
or PyTorch, compute the Fisher once with ``KERAS_BACKEND=tensorflow``
(``tftransfer fisher``), :func:`save` it, and pass
:func:`load` 's result to ``tftransfer.penalize``: the penalty itself runs on every backend.
"""
import contextlib
import json
import logging
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from tftransfer.batching import input_batches
from tftransfer.io_utils import atomic_path
from tftransfer.variables import select_variables

MODES = ("exact", "sampled")
_METADATA_KEY = "__metadata__"


def require_tensorflow(what: str) -> None:
    """Raises RuntimeError unless Keras runs on the TensorFlow backend."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} runs on the TensorFlow backend only (KERAS_BACKEND={backend}). Compute the "
            "Fisher with KERAS_BACKEND=tensorflow (tftransfer fisher), save it with "
            "tftransfer.fisher.save, and pass tftransfer.fisher.load(path) to "
            "tftransfer.penalize on any backend.")


def diagonal(model: keras.Model, dataset: Any, mode: str = "exact", num_samples: int = 1,
             paths: Optional[Sequence[str]] = None, max_examples: Optional[int] = None,
             batch_size: int = 32, epsilon: float = 0.0, clip: Optional[float] = None,
             seed: int = 0, progress: bool = False) -> Dict[str, np.ndarray]:
    """Returns the diagonal Fisher ``{variable.path: np.ndarray}`` of ``model`` on ``dataset``.

    Args:
      model: a ``keras.Model`` (functional, Sequential or subclassed) mapping inputs to
        logits.
      dataset: a ``tf.data.Dataset`` of batches ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, w)``
        (``y``/``w`` ignored), or an array of inputs (or an ``(x, y)`` tuple of arrays),
        cut into batches of ``batch_size``.
      mode: ``"exact"`` (sum over classes) or ``"sampled"`` (labels drawn from the model).
      num_samples: labels drawn per example in ``"sampled"`` mode.
      paths: optional subset of ``variable.path`` s; default all trainable variables.
      max_examples: stop after this many examples (m); default the whole dataset.
      epsilon: added to every entry after clipping (keeps the penalty positive definite).
      clip: optional upper bound applied to every entry.
      seed: seed of the sampled labels (results are reproducible).
      progress: show a progress bar (``keras.utils.Progbar``).
    """
    require_tensorflow("tftransfer.fisher.diagonal")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    if epsilon < 0 or (clip is not None and clip <= 0):
        raise ValueError(f"epsilon must be >= 0 and clip > 0 (or None); got epsilon={epsilon}, "
                         f"clip={clip}.")
    variables = select_variables(model, paths)
    batch_sums = tf.function(
        lambda x, seed_pair: _batch_sums(model, variables, x, mode, int(num_samples), seed_pair),
        reduce_retracing=True, autograph=False)
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    seen = 0
    bar = keras.utils.Progbar(_expected_examples(dataset, max_examples),
                              unit_name="example") if progress else None
    for step, x in enumerate(input_batches(dataset, batch_size)):
        if max_examples is not None:
            if seen >= max_examples:
                break
            x = x[:max_examples - seen]
        sums = batch_sums(x, tf.constant([seed, step], tf.int32))
        for total, s in zip(totals, sums):
            total += s.numpy()
        seen += int(x.shape[0])
        if bar is not None:
            bar.update(seen)
    if seen == 0:
        raise ValueError("the dataset yielded no examples; the Fisher needs at least one.")
    result = {}
    for v, total in zip(variables, totals):
        f = total / seen
        if clip is not None:
            f = np.minimum(f, clip)
        result[v.path] = (f + epsilon).astype(np.float32)
    return result


def squared_gradients(model: keras.Model, variables: Sequence[keras.Variable], x: Any,
                      labels: Any, weights: Any) -> list:
    """``[S(w) for w in variables]``, ``S(w) = sum_n c_n * (d/dw log softmax(f(x_n))[y_n])**2``.

    ``x``: a batch of N independent examples, ``labels`` ``y`` and ``weights`` ``c`` of shape
    [N]. The gradient of one example (batch of one, inference mode: batch norm uses its
    moving statistics) is vectorised over the examples with ``tf.vectorized_map`` (pfor), so
    there is no Python loop; the N per-example gradients of every variable exist at once
    (memory ``N * sum |w|``). Variables that do not reach the logits get zeros. Works for any
    Keras model on the TensorFlow backend; call it inside a ``tf.function``.
    """
    variables = list(variables)

    def one(args):
        x_n, y_n, c_n = args
        with tf.GradientTape() as tape:
            log_p = tf.nn.log_softmax(model(x_n[None], training=False), axis=-1)[0, y_n]
        grads = tape.gradient(log_p, variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [tf.cast(c_n, g.dtype) * tf.square(g) for g in grads]

    with _quiet_pfor_loops():
        per_example = tf.vectorized_map(one, (x, labels, weights))
    return [tf.reduce_sum(s, axis=0) for s in per_example]


class _PforLoopNotice(logging.Filter):
    """Drops pfor's "<Op> uses a while_loop. Fix that!" (a TODO of TensorFlow's own: the
    per-example convolution filter gradients run as an in-graph loop), logged per trace."""

    def filter(self, record):
        return "uses a while_loop. Fix that!" not in record.getMessage()


@contextlib.contextmanager
def _quiet_pfor_loops():
    notice = _PforLoopNotice()
    tf.get_logger().addFilter(notice)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(notice)


def _batch_sums(model, variables, x, mode, num_samples, seed_pair):
    """Sums over the batch of the weighted squared scores, one tensor per variable.

    Every example is repeated R times (R = classes for "exact", ``num_samples`` for
    "sampled"), each copy with its own label ``k`` and weight (``p_k(x)`` or ``1/R``).
    """
    logits = model(x, training=False)
    if mode == "exact":
        rows = tf.shape(logits)[-1]
        labels = tf.tile(tf.range(rows)[None], [tf.shape(logits)[0], 1])
        weights = tf.nn.softmax(logits, axis=-1)
    else:
        rows = num_samples
        labels = tf.random.stateless_categorical(logits, rows, seed=seed_pair, dtype=tf.int32)
        weights = tf.fill(tf.shape(labels), tf.constant(1.0 / rows, logits.dtype))
    return squared_gradients(model, variables, tf.repeat(x, rows, axis=0),
                             tf.reshape(labels, [-1]), tf.reshape(weights, [-1]))


def _expected_examples(dataset, max_examples):
    """How many examples the loop will see, when known (for the progress bar)."""
    if isinstance(dataset, tf.data.Dataset):
        return max_examples
    size = len(dataset[0] if isinstance(dataset, (tuple, list)) else dataset)
    return size if max_examples is None else min(size, max_examples)


def save(path: str, fisher: Dict[str, Any], metadata: Optional[Dict[str, Any]] = None) -> str:
    """Writes ``fisher`` ({path: array}) and optional JSON ``metadata`` to ``path`` (.npz)."""
    arrays = {key: np.asarray(value) for key, value in fisher.items()}
    if _METADATA_KEY in arrays:
        raise ValueError(f"{_METADATA_KEY!r} is reserved; rename that variable path.")
    arrays[_METADATA_KEY] = np.array(json.dumps(metadata or {}, sort_keys=True))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def load(path: str, with_metadata: bool = False
         ) -> Union[Dict[str, np.ndarray], Tuple[Dict[str, np.ndarray], Dict[str, Any]]]:
    """Reads a file written by :func:`save`: ``{path: array}`` (and the metadata dict).
    A Fisher diagonal is an expectation of squared gradients: every value must be finite and
    ``>= 0``, else ``ValueError`` naming the file and the first offending variable."""
    with np.load(path, allow_pickle=False) as data:
        fisher = {key: data[key] for key in data.files if key != _METADATA_KEY}
        metadata = json.loads(str(data[_METADATA_KEY])) if _METADATA_KEY in data.files else {}
    for key, value in fisher.items():
        values = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(
                f"{path}: the Fisher diagonal of {key} has {np.sum(~np.isfinite(values))} "
                f"non-finite and {np.sum(values < 0)} negative values; it must be finite and "
                ">= 0. Recompute it with tftransfer fisher.")
    return (fisher, metadata) if with_metadata else fisher
