"""The driver's model: built, frozen, penalised and compiled inside the strategy's scope.

Order (each step needs the previous): dtype policy (``--precision``) -> ``build`` (source
weights loaded, new head) -> freezing (``--freeze_units``, ``--freeze_batch_norm``) ->
``penalize`` (the starting point is the loaded weights) -> optimizer -> ``compile``.

Learning rate: ``lr * factor**i`` for update ``t`` (1-based) in ``(b_i, b_{i+1}]``, with
``b_0 = 0`` and ``b_i`` the ``--lr_boundaries``: "divided by 10 after 6000 iterations" means
updates 1..6000 use ``lr`` and update 6001 on uses ``lr / 10``. Keras' schedule sees the
optimizer's iteration count ``t - 1``, hence the boundaries ``b_i - 1`` passed to it.
"""
import dataclasses

import keras

from tftransfer.fused_penalty import fused_optimizer
from tftransfer.models import freezing, lr_multipliers
from tftransfer.models.build import HEAD_INITS, build
from tftransfer.training import config as config_lib
from tftransfer.training.config import parse_multiplier


@dataclasses.dataclass
class Compiled:
    """The compiled target model with what the run needs besides it."""
    transfer: object          # tftransfer.models.build.TransferModel
    model: keras.Model
    plan: object              # tftransfer.penalty.PenaltyPlan
    frozen_units: list
    inference: keras.Model = None  # evaluated and exported, when not ``model`` (segmentation,
    # a loss method's wrapper)

    method_state: object = None  # tftransfer.training.methods.MethodState of a --method run

    @property
    def target(self):
        """The target network whose weights the run trains (deviations are logged on it):
        the network a loss method's wrapper trains, else ``model``."""
        if self.method_state is not None and self.inference is not None:
            return self.inference
        return self.model

    @property
    def evaluated(self):
        """The network that is evaluated and exported (images -> logits)."""
        return self.inference if self.inference is not None else self.model


def learning_rate_schedule(config):
    """The piecewise-constant schedule of the module docstring, or with
    ``--lr_schedule=poly`` :class:`tftransfer.segmentation.schedules.PolyDecay`: update
    ``t`` (1-based) uses ``lr * (1 - (t - 1) / T) ** --poly_power``, ``T`` =
    ``--train_steps`` (0 after the last update)."""
    o = config.optim
    if config.task.lr_schedule == "poly":
        from tftransfer.segmentation.schedules import PolyDecay

        return PolyDecay(o.learning_rate, o.train_steps, config.task.poly_power)
    values = [o.learning_rate * o.lr_decay_factor ** i for i in range(len(o.lr_boundaries) + 1)]
    if not o.lr_boundaries:
        return o.learning_rate
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [b - 1 for b in o.lr_boundaries], values)


def multiplier_table(config, model, units):
    """``{variable.path: multiplier}`` from ``--lr_multipliers`` for ``model`` and its
    ``units`` (names, input to output); ValueError naming an unknown unit or layer. Reads
    names and paths only (works on the shape-only network of
    :mod:`tftransfer.training.preflight`)."""
    groups = []
    for entry in config.optim.lr_multipliers:
        member, multiplier = parse_multiplier(entry)
        if isinstance(member, int):
            if member > len(units):
                raise ValueError(f"entry {entry!r} takes {member} units but the model has "
                                 f"only {len(units)} ({units}); lower K.")
            member = units[:member]
        groups.append((member, multiplier))
    return lr_multipliers.group_multipliers(model, groups)


def arch_kwargs(config):
    """The architecture arguments of ``config`` (``--model_widths``), or None."""
    if config.model.arch == "small_resnet" and config.model.model_widths:
        return {"widths": tuple(config.model.model_widths)}
    return None


def build_transfer(config, num_classes, input_shape):
    """The uncompiled :class:`TransferModel` of ``config`` (source weights, seeded head)."""
    m = config.model
    return build(m.arch, num_classes, m.source, weights=m.weights, input_shape=input_shape,
                 head_init=m.head_init, layout=m.layout, source_classes=m.source_classes,
                 seed=config.optim.seed, arch_kwargs=arch_kwargs(config))


def build_compiled(config, strategy, num_classes, input_shape):
    """Builds and compiles the target model of ``config`` under ``strategy``
    (``--task=segmentation``: :func:`tftransfer.training.segmentation_model.build_compiled`)."""
    if config.task.task == "segmentation":
        from tftransfer.training import segmentation_model

        return segmentation_model.build_compiled(config, strategy, num_classes, input_shape)
    if config.method.method != config_lib.NO_METHOD:
        raise ValueError(f"--method={config.method.method} is built by tftransfer.training."
                         "methods.build_compiled (it needs the training data), as run() "
                         "does; this builds --method=none only.")
    m, p = config.model, config.penalty
    keras.mixed_precision.set_dtype_policy(config.runtime.precision)
    fisher = None
    if p.fisher_file:
        from tftransfer import fisher as fisher_lib  # only the Fisher schemes need it
        fisher = fisher_lib.load(p.fisher_file)
    with strategy.scope():
        transfer = build_transfer(config, num_classes, input_shape)
        model = transfer.model
        frozen = freezing.freeze_units(model, m.freeze_units) if m.freeze_units else []
        if m.freeze_batch_norm:
            freezing.freeze_batch_norm(model)
        plan = transfer.penalize(p.scheme, p.alpha, p.beta, fisher=fisher, epsilon=p.epsilon,
                                 penalize_all_trainable=p.penalize_all_trainable,
                                 path=p.penalty_path)
        optimizer = keras.optimizers.SGD(learning_rate_schedule(config),
                                         momentum=config.optim.momentum)
        if config.optim.lr_multipliers:
            optimizer = lr_multipliers.with_lr_multipliers(
                optimizer, multiplier_table(config, model, transfer.units))
        if plan.path == "fused":  # the outermost wrapper (tftransfer.fused_penalty)
            optimizer = fused_optimizer(optimizer, plan)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                      jit_compile=config.runtime.xla, auto_scale_loss=True)
        model.optimizer.build(model.trainable_variables)
    return Compiled(transfer, model, plan, frozen)



def seed_states(model):
    """The states of ``model``'s random seed generators (dropout): in ``model.variables``,
    not in ``model.weights``."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class ModelCache:
    """Compiled models kept between the runs of one process (many short runs, as in the
    demo): tracing the train step costs seconds, a short run not much more.

    A run whose configuration differs from a cached one only in options that leave the
    compiled model unchanged (every option not declared with the ``model`` effect in
    :mod:`tftransfer.training.config`: seed, data, steps, evaluation, outputs, logging), and
    whose data have the same number of classes and input shape, reuses it. Its weights are
    set to those of a fresh ``build`` with the run's seed (the loaded source weights and a new head drawn from ``head_init(seed)``; every weight drawn
    anew, after the same ``keras.utils.set_random_seed``, for ``source="none"``) and its
    optimizer state (momentum, iteration count) is zeroed and its random seed generators
    (dropout) take the states of a fresh build, so the run trains exactly as a freshly built
    model would. The -SP starting point stays valid: the source weights are
    the same file. Segmentation runs are not cached: each gets a fresh build.
    """

    def __init__(self):
        self._models = {}

    @staticmethod
    def config_key(config):
        """Equal for configurations whose ``model`` options are equal."""
        return repr([(name, config_lib.get(config, name))
                     for name in sorted(config_lib.names_with(config_lib.MODEL))])

    def _key(self, config, num_classes, input_shape):
        return repr((self.config_key(config), num_classes, tuple(input_shape)))

    def get(self, config, strategy, num_classes, input_shape):
        """A compiled model for ``config``: a reset cached one or a new one."""
        if config.runtime.precision != "float32":
            raise ValueError("ModelCache supports --precision=float32 only (resetting a loss "
                             "scale is not implemented); run without the cache.")
        if config.task.task == "segmentation":  # its heads have more than a kernel to reset
            return build_compiled(config, strategy, num_classes, input_shape)
        key = self._key(config, num_classes, input_shape)
        if key not in self._models:
            compiled = build_compiled(config, strategy, num_classes, input_shape)
            self._models[key] = (compiled, compiled.model.get_weights())
            return compiled
        compiled, loaded = self._models[key]
        model = compiled.model
        seeds = seed_states(model)
        source = config.model.source
        if source == "none" or seeds:
            fresh = build_transfer(config, num_classes, input_shape).model
            for state, new in zip(seeds, seed_states(fresh)):
                state.assign(new)  # dropout draws as in a fresh build with this seed
        if source == "none":  # every weight is drawn: draw them as a fresh build
            model.set_weights(fresh.get_weights())
        else:  # the source weights as loaded, and the new head drawn with this seed
            model.set_weights(loaded)
            for name in compiled.transfer.new_layers:
                layer = model.get_layer(name)
                layer.kernel.assign(HEAD_INITS[config.model.head_init](
                    seed=config.optim.seed)(layer.kernel.shape))
                layer.bias.assign(keras.ops.zeros_like(layer.bias))
        for variable in model.optimizer.variables:
            variable.assign(keras.ops.zeros_like(variable))
        return compiled
