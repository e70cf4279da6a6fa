"""The penalties of Li, Grandvalet & Davoine as Keras 3 regularizers.

Conventions (docs/recipe.md): quadratic penalties use the ``tf.nn.l2_loss`` factor 1/2,
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

``epsilon`` smooths the kink of the L1 and group norms at the starting point, where
fine-tuning starts (the authors used 1e-16). The "-SP" regularizers hold ``reference``
(and ``fisher``) as tensors or non-trainable variables of the weight's shape; their configs
hold only hyper-parameters, never arrays. A deserialized "-SP" regularizer is *unbound*
until :meth:`AnchoredRegularizer.bind` gives it its arrays (``tftransfer.penalize`` does
this for a whole model).
"""
import math

import keras
import tensorflow as tf

DEFAULT_EPSILON = 1e-16


def check_strength(value, name="alpha"):
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


@_serializable
class L2(keras.regularizers.Regularizer):
    """Weight decay toward zero: ``alpha/2 * sum(w**2)``.

    Keras' own ``keras.regularizers.L2(l2)`` computes ``l2 * sum(w**2)``: ``L2(alpha)`` here
    equals Keras' ``L2(alpha / 2)``.
    """

    def __init__(self, alpha=0.01):
        self.alpha = check_strength(alpha)

    def __call__(self, x):
        return self.alpha * tf.nn.l2_loss(x)  # l2_loss(v) = sum(v**2) / 2, one fused kernel

    def get_config(self):
        return {"alpha": self.alpha}


class AnchoredRegularizer(keras.regularizers.Regularizer):
    """Base of the "-SP" penalties: a function of ``w - w0`` for a fixed reference ``w0``."""

    uses_fisher = False

    def __init__(self, alpha, reference=None, fisher=None):
        self.alpha = check_strength(alpha)
        self.reference = None
        self.fisher = None
        if reference is not None or fisher is not None:
            self.bind(reference, fisher)

    def bind(self, reference, fisher=None):
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

    def _deviation(self, x):
        x = tf.convert_to_tensor(x)
        if self.reference is None:
            raise ValueError(
                f"This {type(self).__name__} is not bound to a starting point (it was probably "
                "rebuilt from its config, which holds no arrays). Call .bind(reference) or "
                "attach penalties with tftransfer.penalize(model, ...).")
        if tuple(x.shape) != tuple(self.reference.shape):
            raise ValueError(f"{type(self).__name__}: weight of shape {tuple(x.shape)} does not "
                             f"match its reference of shape {tuple(self.reference.shape)}.")
        return x - tf.cast(self.reference, x.dtype)

    def _squared_deviation(self, x):
        """``(w - w0)**2``, weighted by ``F`` in the Fisher variants."""
        squared = tf.square(self._deviation(x))
        if self.fisher is not None:
            squared = tf.cast(self.fisher, squared.dtype) * squared
        return squared

    def get_config(self):
        return {"alpha": self.alpha}


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

    def __init__(self, alpha=0.1, reference=None):
        super().__init__(alpha, reference)

    def __call__(self, x):
        return self.alpha * tf.nn.l2_loss(self._deviation(x))


@_serializable
class L2SPFisher(AnchoredRegularizer):
    """L2-SP-Fisher: ``alpha/2 * sum(F * (w - w0)**2)``, ``F`` the source Fisher diagonal."""

    uses_fisher = True

    def __init__(self, alpha=0.1, reference=None, fisher=None):
        super().__init__(alpha, reference, fisher)

    def __call__(self, x):
        return self.alpha * 0.5 * tf.reduce_sum(self._squared_deviation(x))


@_serializable
class L1SP(_SmoothedRegularizer):
    """L1-SP, smoothed: ``alpha * sum(sqrt((w - w0)**2 + epsilon))``."""

    def __init__(self, alpha=0.1, reference=None, epsilon=DEFAULT_EPSILON):
        super().__init__(alpha, reference, None, epsilon)

    def __call__(self, x):
        return self.alpha * tf.reduce_sum(tf.sqrt(self._squared_deviation(x) + self.epsilon))


def default_group_axes(rank):
    """Axes summed within a group: all but the last (output) axis of a kernel."""
    return tuple(range(rank - 1))


class _GroupNorm(_SmoothedRegularizer):
    """``alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} q_j + epsilon)``, ``q`` the (weighted)
    squared deviation and the groups spanned by ``group_axes``."""

    def __init__(self, alpha, reference=None, fisher=None, epsilon=DEFAULT_EPSILON,
                 group_axes=None):
        super().__init__(alpha, reference, fisher, epsilon)
        self.group_axes = None if group_axes is None else tuple(int(a) for a in group_axes)

    def __call__(self, x):
        squared = self._squared_deviation(x)
        axes = self.group_axes if self.group_axes is not None else default_group_axes(len(x.shape))
        group_size = math.prod(x.shape[a] for a in axes)
        group_norms = tf.sqrt(tf.reduce_sum(squared, axis=axes) + self.epsilon)
        return self.alpha * math.sqrt(group_size) * tf.reduce_sum(group_norms)

    def get_config(self):
        return {**super().get_config(), "group_axes": self.group_axes}


@_serializable
class GroupLassoSP(_GroupNorm):
    """Group-Lasso-SP: ``alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} (w_j - w0_j)**2 + epsilon)``.

    ``group_axes`` (default: all but the last axis) are the axes summed within a group; for a
    depthwise kernel (kh, kw, c_in, multiplier) pass ``(0, 1)``.
    """

    def __init__(self, alpha=0.1, reference=None, epsilon=DEFAULT_EPSILON, group_axes=None):
        super().__init__(alpha, reference, None, epsilon, group_axes)


@_serializable
class GroupLassoSPFisher(_GroupNorm):
    """GL-SP-Fisher: ``alpha * sum_g sqrt(p_g) * sqrt(sum_{j in g} F_j (w_j - w0_j)**2 + epsilon)``."""

    uses_fisher = True

    def __init__(self, alpha=0.1, reference=None, fisher=None, epsilon=DEFAULT_EPSILON,
                 group_axes=None):
        super().__init__(alpha, reference, fisher, epsilon, group_axes)
