"""The one mechanism of the ``loss`` methods: :class:`LossTermModel` adds terms to the loss.

A *loss term* (:class:`LossTerm`) is a function of intermediate outputs of the network being
fine-tuned (feature maps of chosen layers, the penultimate features, the logits of the kept
source classifier) and, where the paper needs them per step, of the same outputs of the
*starting point* (the pretrained network, frozen). :class:`LossTermModel` wraps the target
model so that ``model.fit`` minimises

    L(w) = data_loss(y, logits(x)) + sum(model.losses) + sum_t term_t(outputs(x), outputs0(x), y)

``sum(model.losses)`` are the weight penalties already attached (``tftransfer.penalize``,
:func:`decay_new_layers`), so a loss method combines with any of them.

How it works (TensorFlow, JAX and PyTorch backends; terms written with ``keras.ops``):

- one functional graph is built once from the target model: ``images -> {logits, the
  outputs the terms need}``, sharing the target model's layers (and the kept source head,
  which then trains with the rest, as LwF and Co-Tuning do). ``call`` runs it once per step
  and returns the logits, so ``predict``, ``evaluate`` and the compiled metrics see the
  target model's output; the intermediate outputs wait (per thread, so replicas of a
  ``tf.distribute`` strategy do not mix) for :meth:`LossTermModel.compute_loss` of the same
  step;
- when a term needs the starting point's outputs (DELTA's feature maps, LwF's source
  logits), a frozen copy of the needed part of the network is cloned *once*, at
  construction, with the weights the model has then, and run in inference mode (moving
  batch-norm statistics) on the step's images, outside the gradient: one extra forward
  pass per step, as the papers do (data augmentation makes a per-image cache inexact).
  Terms that need no starting-point output (BSS, Co-Tuning) add no forward pass;
- terms are added only when ``training`` is true: ``evaluate`` reports the data loss plus
  the weight penalties, as without the method. Each term's mean over the epoch is a metric
  named after it (``fit``'s history and logs). Under a ``tf.distribute`` strategy each
  term is scaled like Keras scales its compiled loss, and batch statistics (BSS) are those
  of each replica's batch.

Use with ``model.fit``::

    tm = tftransfer.models.build.build("small_resnet", 10, "custom", weights=..., ...)
    wrapped = LossTermModel.from_transfer_model(tm, [BatchSpectralShrinkage(1e-3)])
    wrapped.compile(optimizer, loss=SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    wrapped.fit(train, ...)
    tm.model.save(...)   # the target model: its layers are the wrapper's

Save the target model (``wrapped.model``), not the wrapper: the wrapper is a training-time
device whose frozen copy and term arrays (attention, relationship) are rebuilt from the
pretrained model; :meth:`LossTermModel.get_config` raises to say so.
"""
import threading
from typing import Any, Iterable, Mapping

import keras
from absl import logging
from keras import ops

from tftransfer import penalty as penalty_lib
from tftransfer import regularizers
from tftransfer.models.build import HEAD, TransferModel

FEATURES = "features"
SOURCE_LOGITS = "source_logits"
FEATURE_MAP_PREFIX = "fm/"


def feature_map_key(layer_name: str) -> str:
    """The key of the output of layer ``layer_name`` in the outputs a term receives."""
    return FEATURE_MAP_PREFIX + layer_name


class LossTerm:
    """One term added to the training loss; subclasses set the keys and :meth:`__call__`.

    ``current_keys``: the outputs of the network being trained the term reads (``features``,
    ``source_logits``, or :func:`feature_map_key` of a layer name); ``start_keys``: the
    same outputs of the frozen starting point (empty: no extra forward pass).
    ``name``: the metric name of its value.
    """

    name = "loss_term"
    current_keys = ()
    start_keys = ()

    def __call__(self, current: Mapping[str, Any], start: Mapping[str, Any], y: Any) -> Any:
        """The term's value (a float32 scalar): ``current`` and ``start`` map keys to
        tensors, ``y`` is the batch's targets as given to ``fit``."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


def scale_for_distribution(value: Any) -> Any:
    """``value`` scaled as Keras scales its compiled loss under a distribution strategy
    (1/replicas on TensorFlow), so that the summed replica gradients are the batch's."""
    try:
        from keras.src.losses.loss import scale_loss_for_distribution
    except ImportError:  # pragma: no cover - another Keras layout: no strategy scaling
        return value
    return scale_loss_for_distribution(value)


def without_regularizers(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh copy of ``layer`` from its config without its regularizers (the frozen copy
    adds no penalty, and a tftransfer "-SP" regularizer in a config is unbound)."""
    config = layer.get_config()
    for key in list(config):
        if key.endswith("_regularizer"):
            config[key] = None
    return layer.__class__.from_config(config)


class LossTermModel(keras.Model):
    """The target model with loss terms added to its training loss; see the module
    docstring.

    Args:
      model: the target model (functional or Sequential: its layers' outputs are read
        by name), images -> logits; its current weights are the starting point.
      terms: :class:`LossTerm` s.
      source_head: the kept source classifier (``TransferModel.source_head``), applied to
        the penultimate features when a term reads ``source_logits``; it is trained with
        the model.
      features: the penultimate features: a tensor of ``model``'s graph or a layer name
        (its output); default: the input of the layer named ``predictions``, else of the
        last layer.
    """

    def __init__(self, model: keras.Model, terms: Iterable[LossTerm],
                 source_head: keras.layers.Layer | None = None, features: Any = None,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name or model.name + "_with_terms", **kwargs)
        terms = list(terms)
        if not terms:
            raise ValueError("LossTermModel needs at least one LossTerm; for plain "
                             "fine-tuning train the model itself.")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"loss terms need distinct names (their metrics), got {names}.")
        if not model.built:
            raise ValueError(f"model {model.name!r} is not built: its current weights are "
                             "the starting point, so build (or load) it first.")
        self.model = model
        self.terms = terms
        current_keys = _ordered(k for t in terms for k in t.current_keys)
        start_keys = _ordered(k for t in terms for k in t.start_keys)
        # Tracked (so trained) only when a term reads it: unused weights get no gradient.
        self.source_head = source_head if SOURCE_LOGITS in current_keys + start_keys else None
        with penalty_lib.scope(model):
            outputs = self._graph_outputs(model, current_keys + start_keys, source_head,
                                          features)
            self.network = keras.Model(model.input,
                                       {"logits": model.output,
                                        **{k: outputs[k] for k in current_keys}},
                                       name=self.name + "_network")
            self.start_network = None
            if start_keys:
                self.start_network = self._frozen_copy(
                    keras.Model(model.input, {k: outputs[k] for k in start_keys},
                                name=self.name + "_start_graph"))
            self.term_trackers = [keras.metrics.Mean(name=t.name) for t in terms]
        self._local = threading.local()
        logging.info("LossTermModel %s: terms %s, reading %s%s.", self.name, names,
                     current_keys, f" and the frozen starting point's {start_keys}"
                     if start_keys else " (no starting-point forward pass)")

    @classmethod
    def from_transfer_model(cls, transfer_model: TransferModel, terms: Iterable[LossTerm],
                            **kwargs: Any) -> "LossTermModel":
        """A :class:`LossTermModel` around ``transfer_model.model`` (a
        :class:`tftransfer.models.build.TransferModel`) with its kept source head."""
        return cls(transfer_model.model, terms, source_head=transfer_model.source_head,
                   **kwargs)

    @staticmethod
    def _graph_outputs(model, keys, source_head, features):
        """``{key: tensor}`` in ``model``'s graph for the keys the terms read."""
        out = {}
        feature_tensor = None
        if any(k in (FEATURES, SOURCE_LOGITS) for k in keys):
            if features is None:
                names = [layer.name for layer in model.layers]
                head = model.get_layer(HEAD) if HEAD in names else model.layers[-1]
                feature_tensor = head.input
            elif isinstance(features, str):
                feature_tensor = model.get_layer(features).output
            else:
                feature_tensor = features
        for key in keys:
            if key == FEATURES:
                out[key] = feature_tensor
            elif key == SOURCE_LOGITS:
                if source_head is None:
                    raise ValueError("a loss term reads the source classifier's logits, but "
                                     "no source_head was given: pass TransferModel."
                                     "source_head (build the model from a pretrained "
                                     "source).")
                out[key] = source_head(feature_tensor)
            elif key.startswith(FEATURE_MAP_PREFIX):
                layer_name = key[len(FEATURE_MAP_PREFIX):]
                try:
                    out[key] = model.get_layer(layer_name).output
                except ValueError:
                    raise ValueError(f"no layer named {layer_name!r} in model "
                                     f"{model.name!r} for a feature-map term.") from None
            else:
                raise ValueError(f"unknown loss-term output {key!r}; expected "
                                 f"{FEATURES!r}, {SOURCE_LOGITS!r} or 'fm/<layer name>'.")
        return out

    @staticmethod
    def _frozen_copy(graph):
        """A frozen clone of ``graph`` (new layers, the current weights copied)."""
        copy = keras.models.clone_model(graph, clone_function=without_regularizers)
        copy.set_weights(graph.get_weights())
        copy.trainable = False
        return copy

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        outputs = self.network(inputs, training=training)
        self._local.outputs = outputs
        return outputs["logits"]

    def _term_values(self, x, y):
        """``[value]`` of each term for the outputs of the last ``call`` on ``x``."""
        current = getattr(self._local, "outputs", None)
        if current is None:
            raise ValueError("LossTermModel: compute_loss before any call of the model.")
        start = {}
        if self.start_network is not None:
            start = self.start_network(x, training=False)
            start = {k: ops.stop_gradient(v) for k, v in start.items()}
        return [ops.cast(term(current, start, y), "float32") for term in self.terms]

    def term_values(self, x: Any, y: Any = None, training: bool = True) -> dict[str, Any]:
        """``{term name: value}`` on the batch ``x`` (``y`` for the terms that read the
        labels), the network run with ``training``: what ``fit`` adds for that batch
        (with ``training=True`` batch norm updates its moving statistics, as in a step)."""
        self(x, training=training)
        return {t.name: v for t, v in zip(self.terms, self._term_values(x, y))}

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        """Keras' loss (compiled loss + ``self.losses``) plus, when ``training``, every
        term on the outputs of this step's ``call``."""
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if not training:
            return loss
        for tracker, value in zip(self.term_trackers, self._term_values(x, y)):
            tracker.update_state(value)
            loss = loss + ops.cast(scale_for_distribution(value), loss.dtype)
        return loss

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            "A LossTermModel is a training-time wrapper and is not saved: save its target "
            "model (`.model`, which shares its layers), and wrap the pretrained model again "
            "to train with the terms.")


def _ordered(keys):
    seen = []
    for k in keys:
        if k not in seen:
            seen.append(k)
    return seen


def decay_new_layers(model: keras.Model, beta: float,
                     new_layers: str | keras.layers.Layer | Iterable[str | keras.layers.Layer]
                     ) -> list[str]:
    """Attaches ``beta/2 * ||w||^2`` (:class:`tftransfer.regularizers.L2`) to the kernels of
    ``new_layers`` (layers or names) only: the ``beta/2 ||w_new||^2`` of DELTA and of the
    L2-SP paper, for a method whose regularisation of the inherited layers is a loss term.
    Returns the paths of the decayed kernels. ``beta = 0`` attaches nothing."""
    beta = regularizers.check_strength(beta, "beta")
    if isinstance(new_layers, (str, keras.layers.Layer)):
        new_layers = [new_layers]
    if beta == 0:
        return []
    layers = penalty_lib.all_layers(model)
    paths = []
    for layer in penalty_lib.resolve_new_layers(model, new_layers, layers):
        for variable, _ in penalty_lib.kernel_variables(layer):
            if getattr(variable, "regularizer", None) is not None:
                raise ValueError(f"{variable.path} already has a regularizer; attach the new "
                                 "layers' decay once (or through tftransfer.penalize).")
            penalty_lib.attach(layer, variable, regularizers.L2(beta))
            paths.append(variable.path)
    return paths


_PARAMETER_NAMES = {"lambda": "lam"}


def wrap_method(name: str, transfer_model: TransferModel, data: Any = None,
                **hyper_parameters: Any) -> "LossTermModel":
    """The :class:`LossTermModel` of the loss method ``name`` (``delta_fm``, ``delta``,
    ``bss``, ``lwf``, ``co_tuning``) around ``transfer_model`` (a
    :class:`tftransfer.models.build.TransferModel`), with the registry's hyper-parameter
    names (``lambda`` for LwF and Co-Tuning) and defaults: the one call a driver makes.
    ``data`` (target training batches, or ``(images, labels)``) is what ``delta`` (the
    attention) and ``co_tuning`` (the relationship) compute from once; unused otherwise.
    """
    from tftransfer.methods import bss, co_tuning, delta, lwf
    from tftransfer.methods.registry import get
    spec = get(name)
    if spec.kind != "loss":
        raise ValueError(f"method {name!r} is of kind {spec.kind!r}, not a loss method.")
    unknown = sorted(set(hyper_parameters) - set(spec.hyper_parameters))
    if unknown:
        raise ValueError(f"method {name!r} has no hyper-parameters {unknown}; its are "
                         f"{sorted(spec.hyper_parameters)}.")
    kwargs = {_PARAMETER_NAMES.get(k, k): v
              for k, v in {**spec.hyper_parameters, **hyper_parameters}.items()}
    if name == "delta_fm":
        return delta.wrap(transfer_model, **kwargs)
    if name == "delta":
        if data is None:
            raise ValueError("delta needs data (target training batches) for its channel "
                             "attention; use delta_fm for attention = 1.")
        return delta.wrap(transfer_model, attention_data=data, **kwargs)
    if name == "bss":
        return bss.wrap(transfer_model, eta=kwargs["eta"], k=int(kwargs["k"]))
    if name == "lwf":
        return lwf.wrap(transfer_model, **kwargs)
    if name == "co_tuning":
        if data is None:
            raise ValueError("co_tuning needs data (target training batches) to learn "
                             "p(y_s | y_t).")
        return co_tuning.wrap(transfer_model, relationship_data=data, **kwargs)
    raise ValueError(f"no LossTermModel builder for loss method {name!r}.")
