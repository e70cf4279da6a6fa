"""The penalties of Li, Grandvalet & Davoine as Keras 3 regularizers.

Conventions (docs/recipe.md): quadratic penalties use the factor 1/2 (``tf.nn.l2_loss``),
``w0`` is the starting point (the pretrained value of the weight, frozen), ``F`` the
diagonal Fisher information of the source model, and a *group* is one output channel of a
kernel: the fan-in parameters of that channel. For a convolution kernel in HWIO layout and
for a dense kernel (in, out) that is every axis but the last; depthwise kernels reduce over
the spatial axes only. ``s_g = sqrt(p_g)`` with ``p_g`` the group size.

=====================  ==============================================================
class                  value of ``regularizer(w)``
=====================  ==============================================================
L2                     alpha/2 * sum(w**2)
L2SP                   alpha/2 * sum((w - w0)**2)
L2SPFisher             alpha/2 * sum(F * (w - w0)**2)
L1SP                   alpha * sum(sqrt((w - w0)**2 + epsilon))
GroupLassoSP           alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} (w_j - w0_j)**2 + epsilon)
GroupLassoSPFisher     alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} F_j (w_j - w0_j)**2 + epsilon)
=====================  ==============================================================

Each class also has the closed-form ``gradient(w)`` of exactly that value, and
``value_and_gradient(w)``, which computes ``w - w0`` once for both (the fused path of
:func:`tftransfer.penalize`, ``path="fused"``). With ``d = w - w0``:

=====================  ==============================================================
class                  ``gradient(w)``
=====================  ==============================================================
L2                     alpha * w
L2SP                   alpha * d
L2SPFisher             alpha * F * d
L1SP                   alpha * d / sqrt(d**2 + epsilon)
GroupLassoSP           alpha * sqrt(p_g) * d / sqrt(sum_{j in g} d_j**2 + epsilon)
GroupLassoSPFisher     alpha * sqrt(p_g) * F * d / sqrt(sum_{j in g} F_j d_j**2 + epsilon)
=====================  ==============================================================

(the group sums broadcast over the group's entries). As with automatic differentiation of
the value, ``epsilon = 0`` gives NaN where a group (an entry for L1SP) sits exactly at
``w0``.

``epsilon`` smooths the kink of the L1 and group norms at the starting point, where
fine-tuning starts (the authors used 1e-16). The "-SP" regularizers hold ``reference``
(and ``fisher``) as arrays or non-trainable ``keras.Variable`` s of the weight's shape;
their configs hold only hyper-parameters, never arrays. A deserialized "-SP" regularizer is
*unbound* until :meth:`AnchoredRegularizer.bind` gives it its arrays; called unbound it
raises (a silent 0 would train without the penalty).

Written with ``keras.ops``: the same code runs on the TensorFlow, JAX and PyTorch backends
(docs/backends.md). In a ``.keras`` file (``model.save``) each "-SP" regularizer of a
layer's config stores its ``w0`` (and ``F``) beside the layer's weights, and
``keras.models.load_model`` binds it again (:meth:`AnchoredRegularizer.load_own_variables`),
so the reloaded model has the same ``sum(model.losses)``.
"""
import math
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
from keras import ops

try:  # what keras.saving walks to save and load state beside a layer's own weights
    from keras.src.saving.keras_saveable import KerasSaveable as _Saveable
except ImportError:  # pragma: no cover - another Keras layout: references are not saved
    _Saveable = object

DEFAULT_EPSILON = 1e-16
UNBOUND_HINT = ("Re-attach the penalty to the pretrained model with tftransfer.penalize(model, "
                "...) (then model.load_weights(path) for fine-tuned weights), or call "
                ".bind(reference).")

LOST_ON_LOAD = (
    "tftransfer: this model's config does not carry its layers' penalties (it is rebuilt "
    "from constructor arguments, as KerasHub models are), so keras.models.load_model returns "
    "it WITHOUT its penalty. To train the saved model again with the penalty: rebuild the "
    "pretrained model, call tftransfer.penalize(model, ...), then model.load_weights(path) "
    "(the file holds the fine-tuned weights and the starting point).")


def check_strength(value: Any, name: str = "alpha") -> float:
    """Returns ``value`` as a float; raises ValueError unless it is finite and >= 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}. A penalty "
                         "strength is a weight on a non-negative penalty; use 0 to disable it.")
    return value


def _serializable(cls):
    return keras.saving.register_keras_serializable(package="tftransfer")(cls)


def _half_sum_of_squares(x):
    """``sum(x**2) / 2``."""
    return 0.5 * ops.sum(ops.square(x))


if keras.backend.backend() == "tensorflow":  # one fused kernel: the TF penalty costs no more
    import tensorflow as _tf

    _half_sum_of_squares = _tf.nn.l2_loss  # noqa: F811


@_serializable
class L2(keras.regularizers.Regularizer):
    """Weight decay toward zero: ``alpha/2 * sum(w**2)``.

    Keras' own ``keras.regularizers.L2(l2)`` computes ``l2 * sum(w**2)``: ``L2(alpha)`` here
    equals Keras' ``L2(alpha / 2)``.
    """

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = check_strength(alpha)

    def __call__(self, x: Any) -> Any:
        return self.alpha * _half_sum_of_squares(x)

    def gradient(self, x: Any) -> Any:
        """``alpha * w``."""
        return self.alpha * ops.convert_to_tensor(x)

    def value_and_gradient(self, x: Any) -> Tuple[Any, Any]:
        """``(alpha/2 * sum(w**2), alpha * w)``."""
        x = ops.convert_to_tensor(x)
        return self.alpha * _half_sum_of_squares(x), self.alpha * x

    def get_config(self) -> Dict[str, Any]:
        return {"alpha": self.alpha}


class AnchoredRegularizer(keras.regularizers.Regularizer, _Saveable):
    """Base of the "-SP" penalties: a function of ``w - w0`` for a fixed reference ``w0``
    (Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning with
    Convolutional Networks", Section 3: the starting point ``w0``).

    Keras saves and loads the state of the objects it walks from a model (layers and their
    attributes): a regularizer in a layer's config writes ``w0`` (and ``F``) with
    :meth:`save_own_variables` and is bound again by :meth:`load_own_variables`.
    """

    uses_fisher = False

    def __init__(self, alpha: float, reference: Any = None, fisher: Any = None) -> None:
        self.alpha = check_strength(alpha)
        self.reference = None
        self.fisher = None
        if reference is not None or fisher is not None:
            self.bind(reference, fisher)

    def bind(self, reference: Any, fisher: Any = None) -> "AnchoredRegularizer":
        """Sets the starting point ``reference`` (and ``fisher`` for the Fisher variants)."""
        if reference is None:
            raise ValueError(f"{type(self).__name__} needs a reference (the starting-point "
                             "value of the weight it penalises).")
        if self.uses_fisher and fisher is None:
            raise ValueError(f"{type(self).__name__} needs `fisher`, an array of the weight's "
                             "shape (see tftransfer.fisher.diagonal).")
        if not self.uses_fisher and fisher is not None:
            raise ValueError(f"{type(self).__name__} takes no `fisher`; use the Fisher variant.")
        if fisher is not None and tuple(fisher.shape) != tuple(reference.shape):
            raise ValueError(f"fisher has shape {tuple(fisher.shape)} but the reference has "
                             f"shape {tuple(reference.shape)}; they must match.")
        self.reference = reference
        self.fisher = fisher
        return self

    @property
    def bound(self) -> bool:
        """Whether the starting point (and ``fisher``) are set."""
        return self.reference is not None

    def _deviation(self, x):
        x = ops.convert_to_tensor(x)
        if self.reference is None:
            raise ValueError(
                f"This {type(self).__name__} is not bound to a starting point: it was rebuilt "
                "from its config (which holds no arrays) without the starting point, e.g. by "
                "keras.models.load_model of a file saved without it, so its penalty is "
                f"unknown. {UNBOUND_HINT}")
        if tuple(x.shape) != tuple(self.reference.shape):
            raise ValueError(f"{type(self).__name__}: weight of shape {tuple(x.shape)} does not "
                             f"match its reference of shape {tuple(self.reference.shape)}.")
        return x - ops.cast(self.reference, x.dtype)

    def _squared_deviation(self, x):
        """``(w - w0)**2``, weighted by ``F`` in the Fisher variants."""
        squared = ops.square(self._deviation(x))
        if self.fisher is not None:
            squared = ops.cast(self.fisher, squared.dtype) * squared
        return squared

    def _weighted(self, deviation):
        """``F * (w - w0)`` in the Fisher variants, else ``w - w0``."""
        if self.fisher is None:
            return deviation
        return ops.cast(self.fisher, deviation.dtype) * deviation

    def value_and_gradient(self, x: Any) -> Tuple[Any, Any]:
        """``(value, gradient)`` of the penalty at ``x`` (module docstring), from one
        ``w - w0``."""
        raise NotImplementedError

    def gradient(self, x: Any) -> Any:
        """The closed-form gradient of the penalty at ``x`` (module docstring)."""
        return self.value_and_gradient(x)[1]

    def get_config(self) -> Dict[str, Any]:
        return {"alpha": self.alpha}

    # State in .keras files (keras.saving walks these objects from a layer's attributes).

    def _obj_type(self):
        # keras.saving accepts a fixed set of kinds, each naming the attributes it skips;
        # a regularizer has no saveable children, and a Loss is the nearest plain kind.
        return "Loss"

    def save_own_variables(self, store: Any) -> None:
        """Writes ``w0`` as ``store["0"]`` and ``F`` as ``store["1"]`` (when bound). Warns
        when the model's config does not carry this regularizer (``lost_on_load``, set by
        ``tftransfer.penalize``: models rebuilt from constructor arguments, e.g. KerasHub)."""
        if self.reference is None:
            return
        if getattr(self, "lost_on_load", False):
            warnings.warn(LOST_ON_LOAD, stacklevel=2)
        store["0"] = np.asarray(ops.convert_to_numpy(self.reference))
        if self.fisher is not None:
            store["1"] = np.asarray(ops.convert_to_numpy(self.fisher))

    def load_own_variables(self, store: Any) -> None:
        """Binds to the stored ``w0`` (and ``F``): assigned into the bound variables if any,
        else into new non-trainable ``keras.Variable`` s. Warns when there is nothing to
        load and the regularizer stays unbound."""
        if "0" not in store:
            if self.reference is None:
                warnings.warn(f"A {type(self).__name__} was loaded without its starting point "
                              f"(the file holds none); its penalty cannot be computed. "
                              f"{UNBOUND_HINT}", stacklevel=2)
            return
        arrays = [np.asarray(store[key]) for key in ("0", "1") if key in store]
        current = [self.reference, self.fisher][:len(arrays)]
        if all(isinstance(v, keras.Variable) and tuple(v.shape) == a.shape
               for v, a in zip(current, arrays)):
            for v, a in zip(current, arrays):
                v.assign(a)
            return
        made = [keras.Variable(a, dtype=str(a.dtype), trainable=False, name=n)
                for a, n in zip(arrays, ("reference", "fisher"))]
        self.bind(made[0], made[1] if len(made) > 1 else None)


class _SmoothedRegularizer(AnchoredRegularizer):
    """An anchored penalty with the smoothing constant ``epsilon`` of the L1 / group norms."""

    def __init__(self, alpha, reference=None, fisher=None, epsilon=DEFAULT_EPSILON):
        super().__init__(alpha, reference, fisher)
        self.epsilon = check_strength(epsilon, "epsilon")

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@_serializable
class L2SP(AnchoredRegularizer):
    """L2-SP: ``alpha/2 * sum((w - w0)**2)``."""

    def __init__(self, alpha: float = 0.1, reference: Any = None) -> None:
        super().__init__(alpha, reference)

    def __call__(self, x: Any) -> Any:
        return self.alpha * _half_sum_of_squares(self._deviation(x))

    def gradient(self, x: Any) -> Any:
        """``alpha * (w - w0)``."""
        return self.alpha * self._deviation(x)

    def value_and_gradient(self, x: Any) -> Tuple[Any, Any]:
        """``(alpha/2 * sum(d**2), alpha * d)``, ``d = w - w0``."""
        deviation = self._deviation(x)
        return self.alpha * _half_sum_of_squares(deviation), self.alpha * deviation


@_serializable
class L2SPFisher(AnchoredRegularizer):
    """L2-SP-Fisher: ``alpha/2 * sum(F * (w - w0)**2)``, ``F`` the source Fisher diagonal."""

    uses_fisher = True

    def __init__(self, alpha: float = 0.1, reference: Any = None, fisher: Any = None) -> None:
        super().__init__(alpha, reference, fisher)

    def __call__(self, x: Any) -> Any:
        return self.alpha * 0.5 * ops.sum(self._squared_deviation(x))

    def value_and_gradient(self, x: Any) -> Tuple[Any, Any]:
        """``(alpha/2 * sum(F * d**2), alpha * F * d)``, ``d = w - w0``."""
        deviation = self._deviation(x)
        weighted = self._weighted(deviation)
        return (self.alpha * 0.5 * ops.sum(weighted * deviation), self.alpha * weighted)


@_serializable
class L1SP(_SmoothedRegularizer):
    """L1-SP, smoothed: ``alpha * sum(sqrt((w - w0)**2 + epsilon))``."""

    def __init__(self, alpha: float = 0.1, reference: Any = None,
                 epsilon: float = DEFAULT_EPSILON) -> None:
        super().__init__(alpha, reference, None, epsilon)

    def __call__(self, x: Any) -> Any:
        return self.alpha * ops.sum(ops.sqrt(self._squared_deviation(x) + self.epsilon))

    def value_and_gradient(self, x: Any) -> Tuple[Any, Any]:
        """``(alpha * sum(r), alpha * d / r)``, ``d = w - w0``, ``r = sqrt(d**2 + epsilon)``."""
        deviation = self._deviation(x)
        root = ops.sqrt(ops.square(deviation) + self.epsilon)
        return self.alpha * ops.sum(root), self.alpha * deviation / root


def default_group_axes(rank: int) -> Tuple[int, ...]:
    """Axes summed within a group: all but the last (output) axis of a kernel."""
    return tuple(range(rank - 1))


class _GroupNorm(_SmoothedRegularizer):
    """``alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} q_j + epsilon)``, ``q`` the (weighted)
    squared deviation and the groups spanned by ``group_axes``."""

    def __init__(self, alpha, reference=None, fisher=None, epsilon=DEFAULT_EPSILON,
                 group_axes=None):
        super().__init__(alpha, reference, fisher, epsilon)
        self.group_axes = None if group_axes is None else tuple(int(a) for a in group_axes)

    def _axes(self, x):
        return self.group_axes if self.group_axes is not None else default_group_axes(len(x.shape))

    def __call__(self, x):
        squared = self._squared_deviation(x)
        axes = self._axes(x)
        group_size = math.prod(x.shape[a] for a in axes)
        group_norms = ops.sqrt(ops.sum(squared, axis=axes) + self.epsilon)
        return self.alpha * math.sqrt(group_size) * ops.sum(group_norms)

    def value_and_gradient(self, x):
        """``(alpha * s * sum_g n_g, alpha * s * F * d / n_g)``, ``d = w - w0``,
        ``s = sqrt(p_g)``, ``n_g = sqrt(sum_{j in g} F_j d_j**2 + epsilon)`` broadcast over
        the group (``F = 1`` without Fisher)."""
        deviation = self._deviation(x)
        weighted = self._weighted(deviation)
        axes = self._axes(deviation)
        scale = self.alpha * math.sqrt(math.prod(deviation.shape[a] for a in axes))
        norms = ops.sqrt(ops.sum(weighted * deviation, axis=axes, keepdims=True) + self.epsilon)
        return scale * ops.sum(norms), scale * weighted / norms

    def get_config(self):
        return {**super().get_config(), "group_axes": self.group_axes}


@_serializable
class GroupLassoSP(_GroupNorm):
    """Group-Lasso-SP: ``alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} (w_j - w0_j)**2 + epsilon)``.

    ``group_axes`` (default: all but the last axis) are the axes summed within a group; for a
    depthwise kernel (kh, kw, c_in, multiplier) pass ``(0, 1)``.
    """

    def __init__(self, alpha: float = 0.1, reference: Any = None,
                 epsilon: float = DEFAULT_EPSILON,
                 group_axes: Optional[Sequence[int]] = None) -> None:
        super().__init__(alpha, reference, None, epsilon, group_axes)


@_serializable
class GroupLassoSPFisher(_GroupNorm):
    """GL-SP-Fisher: ``alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} F_j (w_j - w0_j)**2 + epsilon)``."""

    uses_fisher = True

    def __init__(self, alpha: float = 0.1, reference: Any = None, fisher: Any = None,
                 epsilon: float = DEFAULT_EPSILON,
                 group_axes: Optional[Sequence[int]] = None) -> None:
        super().__init__(alpha, reference, fisher, epsilon, group_axes)
