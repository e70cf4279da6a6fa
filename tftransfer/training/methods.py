"""The driver's glue to :mod:`tftransfer.methods`: ``--method`` and its hyper-parameters.

A method changes what the one training loop (:mod:`tftransfer.training.run`,
:func:`tftransfer.training.loop.fit`) is given, never the loop:

- ``weight_penalty`` (``l2_sp_k``, ``group_lasso_sp_layer``): the penalty attached instead of
  ``--scheme``'s, with ``--alpha``, ``--beta`` (and ``--epsilon``);
- ``loss`` (``delta_fm``, ``delta``, ``bss``, ``lwf``, ``co_tuning``): the model fitted is a
  :class:`tftransfer.methods.loss_terms.LossTermModel` around the target network, which is
  what is evaluated and exported (:attr:`Compiled.evaluated`). ``delta`` and ``delta_fm``
  replace ``--scheme`` (their ``beta/2 ||w_new||^2`` is ``--delta_beta``); ``bss``, ``lwf``
  and ``co_tuning`` add to it. DELTA's attention and Co-Tuning's relationship are computed
  once, at build, from :func:`train_batches` (one epoch of the run's training stream);
- ``optimizer`` (``mars_pgm``, ``frobenius_pgm``, ``spd``): the SGD of the recipe wrapped
  (:func:`tftransfer.methods.mars_pgm.with_mars_pgm`, :func:`tftransfer.methods.spd.with_spd`),
  adding to ``--scheme``; its ``W0`` is in the checkpoint (:func:`checkpoint_extra`);
- ``layer`` (``stochnorm``): batch norm swapped for :class:`tftransfer.methods.stochnorm.
  StochNorm` before the penalty, seeded with ``--seed``; its random states are in the
  checkpoint;
- ``procedure`` (``lp_ft``, ``wise_ft``): phases of :func:`tftransfer.training.run.run`:
  the linear probe (:func:`probe_phase`) before fine-tuning, and for ``wise_ft`` the
  interpolation grid (:func:`wise_ft_phase`) after it. The probe's completion and
  ``theta_0`` (starting point with the probed head) are in the checkpoint, so a run killed
  after the probe resumes without probing again.

Every method is built fresh (the :class:`~tftransfer.training.model.ModelCache` is not
used: a method's state, e.g. DELTA's attention or SPD's ``W0`` of the new head, depends on
the data or the seed).
"""
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tftransfer import methods as methods_lib
from tftransfer.io_utils import atomic_write_json
from tftransfer.methods import (bss, co_tuning, delta, group_lasso_sp_layer, l2_sp_k, lp_ft,
                                lwf, mars_pgm, spd, stochnorm, wise_ft)
from tftransfer.models import freezing, lr_multipliers
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib
from tftransfer.training import model as model_lib
from tftransfer.training import strategy as strategy_lib
from tftransfer.training.evaluate import accuracy_and_cross_entropy
from tftransfer.variables import StartingPoint

NO_METHOD = config_lib.NO_METHOD
PROBE_FILE = "linear_probe.json"


def selected(config):
    """The ``--method`` of ``config`` (``"none"``: the ``--scheme`` penalty alone)."""
    return config.method.method


def record(config):
    """The ``results.json`` fields of the method: ``method`` (its name), ``method_kind``,
    ``method_parameters`` (registry hyper-parameter name -> value; ``{}`` for none) and
    ``method_scheme``: the ``--scheme`` the method adds to (None when it replaces it)."""
    name = selected(config)
    if name == NO_METHOD:
        return {"method": NO_METHOD, "method_kind": None, "method_parameters": {},
                "method_scheme": config.penalty.scheme}
    replaces = name in config_lib.MethodConfig.REPLACES_SCHEME
    return {"method": name, "method_kind": methods_lib.get(name).kind,
            "method_parameters": config.method.parameters(config),
            "method_scheme": None if replaces else config.penalty.scheme}


def train_batches(data, mode, batch_size):
    """One epoch of the run's training stream as network inputs: its first
    ``ceil(num_train / batch_size)`` batches (augmented as in training; the stream is a
    pure function of ``--seed``, so a restarted run computes the same). What the linear
    probe, DELTA's attention and Co-Tuning's relationship are computed from."""
    count = max(1, math.ceil(data.num_train / batch_size))
    batches = data_lib.network_inputs(data.train, mode, data.mean).take(count)
    return batches.apply(tf.data.experimental.assert_cardinality(count))  # Keras' fit epochs


def _penalize(config, transfer):
    """The penalty of ``config`` attached to ``transfer``: the method's when it is one,
    else ``--scheme``'s (``delta``/``delta_fm``: none here, their terms carry it)."""
    p, name = config.penalty, selected(config)
    model, new = transfer.model, transfer.new_layers
    if name == "l2_sp_k":
        return l2_sp_k.penalize_l2_sp_k(model, p.alpha, p.beta, new_layers=new)
    if name == "group_lasso_sp_layer":
        return group_lasso_sp_layer.penalize_group_lasso_sp_layer(
            model, p.alpha, p.beta, new_layers=new, epsilon=p.epsilon)
    if name in ("delta", "delta_fm"):
        return transfer.penalize("none", 0.0, 0.0)
    fisher = None
    if p.fisher_file:
        from tftransfer import fisher as fisher_lib
        fisher = fisher_lib.load(p.fisher_file)
    return transfer.penalize(p.scheme, p.alpha, p.beta, fisher=fisher, epsilon=p.epsilon,
                             penalize_all_trainable=p.penalize_all_trainable)


def _optimizer(config, transfer):
    """The recipe's SGD, wrapped by an ``optimizer`` method."""
    h, name, model = config.method, selected(config), transfer.model
    optimizer = keras.optimizers.SGD(model_lib.learning_rate_schedule(config),
                                     momentum=config.optim.momentum)
    if config.optim.lr_multipliers:
        optimizer = lr_multipliers.with_lr_multipliers(
            optimizer, model_lib.multiplier_table(config, model, transfer.units))
    if name in ("mars_pgm", "frobenius_pgm"):
        gamma_new = math.inf if h.pgm_gamma_new is None else h.pgm_gamma_new
        optimizer = mars_pgm.with_mars_pgm(
            optimizer, model, gamma=h.pgm_gamma, new_layers=transfer.new_layers,
            gamma_new=gamma_new, norm="mars" if name == "mars_pgm" else "frobenius")
    elif name == "spd":
        optimizer = spd.with_spd(optimizer, model, strength=h.spd_strength)
    return optimizer


def _trained_model(config, transfer, batches):
    """The model ``fit`` trains: ``transfer.model`` or a loss method's wrapper of it."""
    h, name = config.method, selected(config)
    layers = list(h.delta_layers) or None
    if name == "delta_fm":
        return delta.wrap(transfer, alpha=h.delta_alpha, beta=h.delta_beta, layers=layers)
    if name == "delta":
        return delta.wrap(transfer, alpha=h.delta_alpha, beta=h.delta_beta, layers=layers,
                          attention_data=batches(), temperature=h.delta_temperature,
                          head_epochs=h.delta_head_epochs)
    if name == "bss":
        return bss.wrap(transfer, eta=h.bss_eta, k=h.bss_k)
    if name == "lwf":
        return lwf.wrap(transfer, lam=h.lwf_lambda, temperature=h.lwf_temperature)
    if name == "co_tuning":
        return co_tuning.wrap(transfer, lam=h.co_tuning_lambda, relationship_data=batches(),
                              calibration_scale=h.co_tuning_calibration_scale)
    return transfer.model


class MethodState:
    """The extra state of a method run, checkpointed with the model: the optimizer
    method's ``W0`` (``starting_point``), the StochNorm random states, and for the probed
    procedures the phase flag ``probed`` (1 once the linear probe ran) and ``theta_0``
    (every weight of the target network after the probe)."""

    def __init__(self):
        self.starting_point = None
        self.seed_states = []
        self.probed = None
        self.theta_0 = None

    def checkpoint_extra(self):
        """``{name: trackable}`` for :class:`tftransfer.training.checkpoint.Checkpointer`."""
        out = {}
        if self.starting_point is not None:
            out["method_starting_point"] = self.starting_point
        if self.seed_states:
            out["method_seed_states"] = self.seed_states
        if self.probed is not None:
            out["method_probed"] = self.probed
            out["method_theta_0"] = self.theta_0
        return out


def build_compiled(config, strategy, data):
    """The :class:`~tftransfer.training.model.Compiled` of a ``--method`` run on ``data``
    (a :class:`tftransfer.training.data.InputData`), built under ``strategy`` in the order
    of :mod:`tftransfer.training.model` (build, [StochNorm swap], freezing, penalty,
    optimizer, [loss wrapper], compile); its ``method_state`` holds what
    :func:`checkpoint_extra` checkpoints."""
    name = selected(config)
    if name == NO_METHOD:
        raise ValueError("build_compiled of tftransfer.training.methods builds --method runs; "
                         "--method=none is tftransfer.training.model.build_compiled.")
    m, h = config.model, config.method
    keras.mixed_precision.set_dtype_policy(config.runtime.precision)
    state = MethodState()
    with strategy.scope():
        transfer = model_lib.build_transfer(config, data.num_classes, data.input_shape)
        if name == "stochnorm":
            transfer = stochnorm.swap_batch_norm(transfer, p=h.stochnorm_p,
                                                 seed=config.optim.seed)
        model = transfer.model
        frozen = freezing.freeze_units(model, m.freeze_units) if m.freeze_units else []
        if m.freeze_batch_norm:
            freezing.freeze_batch_norm(model)
        plan = _penalize(config, transfer)
        optimizer = _optimizer(config, transfer)
        trained = _trained_model(
            config, transfer,
            lambda: train_batches(data, transfer.preprocessing, config.optim.batch_size))
        trained.compile(optimizer=optimizer,
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                        jit_compile=config.runtime.xla, auto_scale_loss=True)
        trained.optimizer.build(trained.trainable_variables)
        inner = getattr(trained.optimizer, "inner_optimizer", trained.optimizer)
        anchor = getattr(inner, "_anchor", None)
        if anchor is not None:
            state.starting_point = anchor.starting_point
        if name == "stochnorm":
            state.seed_states = model_lib.seed_states(model)
        if name in config_lib.MethodConfig.PROBED:
            state.probed = keras.Variable(0, dtype="int32", trainable=False,
                                          name="method_probed")
            state.theta_0 = StartingPoint(model.weights, name="wise_ft_theta_0")
    logging.info("method %s (%s): %s", name, methods_lib.get(name).kind,
                 config.method.parameters(config))
    return model_lib.Compiled(transfer, trained, plan, frozen,
                              inference=model if trained is not model else None,
                              method_state=state)


def probe_phase(config, compiled, data, identity_digest, say):
    """Phase 1 of ``lp_ft`` / ``wise_ft``: the linear probe of the target network's head on
    one epoch of training batches (:func:`train_batches`), unless the restored checkpoint
    says it ran. Then ``theta_0`` is set to the probed network and the phase flag to 1; the
    caller saves a checkpoint. Returns the probe's summary (``results.json``'s
    ``linear_probe``), also kept in ``<output_dir>/linear_probe.json`` for a resumed run,
    and whether the probe ran now."""
    state = compiled.method_state
    stored = os.path.join(config.runtime.output_dir, PROBE_FILE)
    if int(keras.ops.convert_to_numpy(state.probed)):
        summary = None
        if os.path.exists(stored):
            with open(stored) as f:
                summary = json.load(f)
            if summary.pop("identity", None) != identity_digest:
                summary = None
        say("linear probe: done before the restored checkpoint, not run again")
        return summary, False
    h, network = config.method, compiled.evaluated
    result = lp_ft.linear_probe(
        network, train_batches(data, compiled.transfer.preprocessing,
                               config.optim.batch_size),
        head=lp_ft.HEAD, epochs=h.probe_epochs, learning_rate=h.probe_learning_rate,
        l2=h.probe_l2, seed=config.optim.seed)
    for variable in network.weights:
        state.theta_0.references[variable.path].assign(variable)
    state.probed.assign(1)
    summary = {"epochs": result.epochs, "final_loss": result.losses[-1],
               "examples": result.examples, "feature_dim": result.feature_dim}
    if strategy_lib.is_chief():
        atomic_write_json(stored, {**summary, "identity": identity_digest})
    say(f"linear probe: {result.epochs} epoch(s) on {result.examples} training images, "
        f"loss {result.losses[-1]:.4f}")
    return summary, True


def wise_ft_phase(config, compiled, test, eval_split, say):
    """The WiSE-FT phase after fine-tuning: ``theta(a) = (1 - a) theta_0 + a theta_1`` of
    the target network evaluated (accuracy, cross-entropy) on ``test``, the run's evaluated
    split ``eval_split``, at every ``--wise_ft_grid`` coefficient; the network is then left
    at ``--wise_ft_alpha`` (what the run evaluates and exports). ``a`` is never chosen
    here: the grid's scores are recorded for a selection on a validation split."""
    h, network = config.method, compiled.evaluated
    theta_1 = wise_ft.snapshot(network)
    theta_0 = {path: np.array(keras.ops.convert_to_numpy(v))
               for path, v in compiled.method_state.theta_0.references.items()}
    grid = wise_ft.evaluate_grid(network, theta_0, theta_1, alphas=h.wise_ft_grid,
                                 evaluate=lambda net: accuracy_and_cross_entropy(net, test))
    wise_ft.assign(network, wise_ft.interpolate(theta_0, theta_1, h.wise_ft_alpha))
    points = [{"alpha": a, "accuracy": acc, "cross_entropy": ce} for a, (acc, ce) in grid]
    say("wise_ft on " + eval_split + ": " + ", ".join(
        f"a={p['alpha']:g} {p['accuracy']:.4f}" for p in points))
    return {"eval_split": eval_split, "alpha": h.wise_ft_alpha, "grid": points}
