"""The one way tftransfer extends a Keras optimizer: a mixin on its per-variable update.

Three wrappers change what an optimizer does to each variable (learning-rate multipliers,
``tftransfer.models.lr_multipliers``; the MARS-PGM projection, ``tftransfer.methods.mars_pgm``;
selective projection decay, ``tftransfer.methods.spd``). Each is a mixin overriding
``update_step(gradient, variable, learning_rate)`` and becomes, for a base optimizer class, the
class :func:`wrapped_class` makes (``<Prefix><Base>``, registered as serialisable).

:class:`PerVariableUpdate` makes such an override run on every backend: Keras' PyTorch
backend updates all variables of SGD, Adam, ... at once (``_parallel_update_step``) and
never calls ``update_step``, so there the mixin runs the per-variable path itself.
"""
import keras


class PerVariableUpdate:
    """Base of the mixins that override ``update_step``: on the PyTorch backend, where Keras'
    optimizers bypass ``update_step``, the update runs variable by variable through it."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # No torch import here (the library never imports torch): Keras' PyTorch trainer
        # already applies the optimizer under torch.no_grad, and variable assignment is
        # no-grad itself.
        if keras.backend.backend() != "torch":
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        for gradient, variable in zip(grads, trainable_variables):
            self.update_step(gradient, variable, learning_rate)


_CLASSES = {}


def wrapped_class(mixin: type, base: type[keras.optimizers.Optimizer], prefix: str,
                  what: str) -> type[keras.optimizers.Optimizer]:
    """The optimizer class ``<prefix><Base>`` = ``mixin`` (a :class:`PerVariableUpdate`)
    over ``base`` (a ``keras.optimizers.Optimizer`` subclass), made once and registered as
    serialisable (package ``tftransfer``). ``what`` says what the mixin adds, for the error
    when ``base`` has it already."""
    if not issubclass(mixin, PerVariableUpdate):
        raise TypeError(f"{mixin.__name__} must derive from PerVariableUpdate.")
    if issubclass(base, mixin):
        raise ValueError(f"{base.__name__} already has {what}.")
    if not issubclass(base, keras.optimizers.Optimizer):
        raise TypeError(f"Expected a keras.optimizers.Optimizer subclass, got {base!r}.")
    if (mixin, base) not in _CLASSES:
        name = f"{prefix}{base.__name__}"
        cls = type(name, (mixin, base), {"__doc__": mixin.__doc__})
        _CLASSES[mixin, base] = keras.saving.register_keras_serializable("tftransfer", name)(cls)
    return _CLASSES[mixin, base]
