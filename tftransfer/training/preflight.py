"""Checks of a run against the files its flags name and the model they build, before the
strategy, the data and the model exist: :func:`check`.

``check(config)``:

- takes a :class:`~tftransfer.training.config.RunConfig` that passed
  :func:`~tftransfer.training.config.validate`, and the run's input hook (default the
  driver's own; :meth:`tftransfer.training.data.Inputs.input_shape` gives the network's
  input shape);
- returns None, or raises :class:`~tftransfer.training.config.ConfigError` with one line per
  problem, each saying what is wrong and how to fix it (the style of ``validate``);
- writes nothing and does not start the TensorFlow runtime (``--cpu_logical_devices`` can
  still split the CPU afterwards);
- reads ``--fisher_file`` (all of it), the variable shapes of ``--weights`` (h5 metadata,
  no values), the list of physical GPUs and ``TF_CONFIG``, and the directory listings of
  the data's location (:mod:`tftransfer.training.data_location`);
- when ``--weights``, ``--fisher_file``, ``--lr_multipliers``, ``--freeze_units`` or
  ``--deviation_layers`` is set, builds the source network of the flags with shape-only
  variables (``keras.StatelessScope``: paths and shapes, no values; ResNet-101 takes about
  half a second). That build draws default initializer seeds from Python's ``random``, so
  call ``check`` before ``keras.utils.set_random_seed``.

Checks:

- the data is where the flags say (:mod:`tftransfer.training.data_location`): a
  ``--data_dir`` (or ``--source_eval_data_dir``, ``--manual_dir``) that does not exist or
  holds none of the files the dataset needs, a dataset that needs one and got none;
- the global ``--batch_size`` is divisible by the replicas of ``--strategy``
  (:func:`expected_replicas`);
- every value of the Fisher file is finite and ``>= 0`` (:func:`tftransfer.fisher.load`),
  and its entries cover the variables the penalty anchors, with their shapes (a file
  computed for another architecture or width is named with a few missing, reshaped and
  unexpected paths and their counts);
- the images' channels (:meth:`~tftransfer.training.data.Inputs.input_shape`) fit the
  source network's: an ImageNet or Places365 network reads RGB (grey Fashion-MNIST is
  refused with ``--grey_to_rgb``, the flag that repeats its channel), a ``--weights`` file
  that fits the network for the other channel count (1 or 3) is named as such;
- ``--weights`` fits the source network: the first layer that differs with both shapes,
  on one line;
- ``--freeze_units`` does not exceed the network's units, every ``--lr_multipliers`` unit
  or layer exists (the message lists the units), every ``--deviation_layers`` path is a
  trainable variable.
"""
import contextlib
import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf
# Keras has no public way to forget the shape-only variables of a StatelessScope build.
from keras.src.backend.common import global_state

from tftransfer import fisher as fisher_lib
from tftransfer import penalty
from tftransfer.models import freezing, weights_file
from tftransfer.models.build import HEAD, SOURCE_CLASSES, resolve_layout
from tftransfer.models.build import source_network as build_source_network
from tftransfer.models.units import unit_names
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib
from tftransfer.training import data_location
from tftransfer.training import model as model_lib

RGB_SOURCES = ("imagenet", "places365")  # pretrained on RGB images
MODEL_FLAGS = ("weights", "fisher_file", "lr_multipliers", "freeze_units", "deviation_layers")
_ANY_WIDTH = 2  # --source=none: the classifier is new, its width changes no check


def expected_replicas(config):
    """Replicas ``--strategy`` will have on this machine, without starting TensorFlow:
    1 for ``default``; ``mirrored``: the visible GPUs, else ``--cpu_logical_devices`` (at
    least 1); ``multi_worker``: the workers of ``TF_CONFIG`` times this machine's GPUs (at
    least 1), assuming workers alike; None for ``tpu`` (known once connected)."""
    strategy = config.runtime.strategy
    if strategy == "default":
        return 1
    if strategy == "tpu":
        return None
    gpus = len(tf.config.list_physical_devices("GPU"))
    if strategy == "mirrored":
        return gpus or max(1, config.runtime.cpu_logical_devices)
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    return max(1, workers) * max(1, gpus)


def _replica_problems(config):
    replicas = expected_replicas(config)
    batch = config.optim.batch_size
    if replicas is None or batch % replicas == 0:
        return []
    return [f"--batch_size={batch} is the global batch; it must be divisible by the "
            f"{replicas} replicas of --strategy={config.runtime.strategy} on this machine: "
            f"use a multiple of {replicas}."]


def _load_fisher(config):
    """``(fisher or None, problems)``: the Fisher file read and its values checked."""
    if not config.penalty.fisher_file:
        return None, []
    try:
        return fisher_lib.load(os.path.expanduser(config.penalty.fisher_file)), []
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        return None, [f"--fisher_file: {weights_file.one_line(error)}"]


@contextlib.contextmanager
def shape_only_variables():
    """Variables created inside have paths and shapes but no values, and are never
    allocated afterwards (Keras would otherwise initialise them at its next top-level
    StatelessScope exit)."""
    pending = list(global_state.get_global_attribute("uninitialized_variables", []))
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)


def source_network(config, input_shape):
    """The source network ``config`` builds for inputs of ``input_shape``, with its
    classifier ``predictions`` and shape-only variables (nothing loaded). ValueError when
    the flags cannot build it."""
    m = config.model
    layout = resolve_layout(m.arch, m.layout)
    classes = m.source_classes or SOURCE_CLASSES.get(m.source) or _ANY_WIDTH
    with shape_only_variables():
        network, _ = build_source_network(m.arch, layout, input_shape, classes,
                                           model_lib.arch_kwargs(config))
    return network


def _describe(config):
    """The flags that shape the network, e.g. ``--arch=small_resnet --model_widths=4,8``."""
    m = config.model
    parts = [f"--arch={m.arch}"]
    if m.layout:
        parts.append(f"--layout={m.layout}")
    if m.model_widths:
        parts.append("--model_widths=" + ",".join(map(str, m.model_widths)))
    return " ".join(parts)


def _weights_problems(config, network):
    weights = config.model.weights
    if not weights:
        return []
    try:
        problem = weights_file.mismatch(network, os.path.expanduser(weights))
    except OSError as error:
        return [f"--weights={weights} cannot be read ({weights_file.one_line(error)}); "
                "pass a Keras weights file (.weights.h5, .keras or legacy .h5)."]
    if problem is None:
        return []
    channels = network.input_shape[-1]
    other = {1: 3, 3: 1}.get(channels)
    if other and weights_file.mismatch(
            source_network(config, network.input_shape[1:-1] + (other,)),
            os.path.expanduser(weights)) is None:
        return [_channel_problem(config, channels, other, f"--weights={weights}")]
    classes = network.get_layer(HEAD).units
    return [f"--weights={weights} does not fit {_describe(config)} with a "
            f"{classes}-way classifier: {problem}. Use weights of this network, or set "
            "--arch, --model_widths, --layout, --source_classes to the file's."]


def _channel_problem(config, channels, source_channels, source):
    """The message for images of ``channels`` channels and a ``source`` network reading
    ``source_channels``."""
    d = config.data
    kind = {1: "grey", 3: "RGB"}
    what = (f"{source} is a network for {source_channels}-channel "
            f"({kind.get(source_channels, '?')}) inputs but --dataset={d.dataset} has "
            f"{channels}-channel ({kind.get(channels, '?')}) images")
    if channels == 1 and source_channels == 3 and d.dataset == "fashion_mnist":
        return f"{what}: add --grey_to_rgb to repeat the grey channel three times."
    if channels == 3 and source_channels == 1 and d.dataset == "fashion_mnist":
        return f"{what}: drop --grey_to_rgb."
    if d.dataset == "scenes":
        return (f"{what}: " + ("add --scenes_rgb to repeat the grey channel three times."
                               if channels == 1 else "drop --scenes_rgb."))
    if channels == 3 and source_channels == 1 and not d.options().in_memory:
        return f"{what}: add --rgb_to_grey to turn them into one grey channel."
    if channels == 3 and source_channels == 1:
        return (f"{what}; a grey network cannot read colour: use a source network trained "
                "on RGB images, or train from scratch with --source=none.")
    return f"{what}: give images of {source_channels} channel(s) or another source network."


def channel_problems(config, input_shape):
    """The image channels against a source network of known channels, without building it:
    ImageNet and Places365 networks read RGB. A ``--weights`` file is checked against the
    shape-only build (:func:`_weights_problems`)."""
    m = config.model
    if m.weights or m.source not in RGB_SOURCES or input_shape[-1] == 3:
        return []
    return [_channel_problem(config, input_shape[-1], 3, f"--source={m.source}")]


def _anchored(config, network):
    """``{path: shape}`` of the variables the penalty anchors (and needs a Fisher entry
    for): the kernels of every layer but the classifier, or with
    ``--penalize_all_trainable`` their trainable variables (:mod:`tftransfer.penalty`)."""
    out = {}
    for layer in penalty.all_layers(network):
        if layer.name == HEAD:
            continue
        variables = (layer.trainable_weights if config.penalty.penalize_all_trainable else
                     [v for v, _ in penalty.kernel_variables(layer)])
        out.update((v.path, tuple(v.shape)) for v in variables)
    return out


def _fisher_problems(config, network, fisher):
    if fisher is None:
        return []
    needed = _anchored(config, network)
    missing = [path for path in needed if path not in fisher]
    reshaped = [path for path in needed
                if path in fisher and tuple(np.shape(fisher[path])) != needed[path]]
    if not missing and not reshaped:
        return []
    known = {v.path for v in network.weights}
    unexpected = [key for key in fisher if key not in known]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of the {len(needed)} penalised variables have no entry "
                     f"(e.g. {missing[:3]})")
    if reshaped:
        path = reshaped[0]
        parts.append(f"{len(reshaped)} entries have another shape (e.g. {path}: "
                     f"{tuple(np.shape(fisher[path]))} in the file, {needed[path]} in the "
                     "model)")
    if unexpected:
        parts.append(f"{len(unexpected)} of its {len(fisher)} entries are not variables of "
                     f"the model (e.g. {unexpected[:3]})")
    return [f"--fisher_file={config.penalty.fisher_file} is not the Fisher of {_describe(config)}: "
            + "; ".join(parts) + ". Compute it on this source network with "
            "tftransfer fisher."]


def _multiplier_problems(config, network, units):
    try:
        model_lib.multiplier_table(config, network, units)
    except ValueError as error:
        return [f"--lr_multipliers: {error}"]
    return []


def _deviation_problems(config, network):
    trainable = [v.path for v in network.trainable_variables]
    unknown = [path for path in config.runtime.deviation_layers if path not in trainable]
    if not unknown:
        return []
    kernels = [path for path in trainable if path.endswith("kernel")]
    return [f"--deviation_layers: {unknown} are not trainable variable paths of "
            f"{_describe(config)}; give paths such as {kernels[:2]}."]


def _model_problems(config, fisher, input_shape):
    """Problems of the flags that need the network's names and shapes."""
    try:
        network = source_network(config, input_shape)
    except ValueError as error:
        return [f"{_describe(config)} cannot be built from these flags "
                f"({weights_file.one_line(error)}); change the ones it names (--crop_size, "
                "--layout, --model_widths)."]
    problems = _weights_problems(config, network)
    units = unit_names(network)
    freeze = config.model.freeze_units
    if freeze > len(units):
        return problems + [f"--freeze_units={freeze} exceeds the {len(units)} units of "
                           f"{_describe(config)} ({units}); use at most {len(units)}."]
    freezing.freeze_units(network, freeze)  # trainable as in the run
    if config.model.freeze_batch_norm:
        freezing.freeze_batch_norm(network)
    return (problems + _multiplier_problems(config, network, units)
            + _fisher_problems(config, network, fisher) + _deviation_problems(config, network))


def data_problems(config):
    """Where the target task's data and, with ``--source_eval_dataset``, the source task's
    are read, and whether they are there (:func:`tftransfer.training.data_location.
    problems`)."""
    out = data_location.problems(config)
    if config.evaluation.source_eval_dataset:
        flag = "source_eval_data_dir" if config.evaluation.source_eval_data_dir else "data_dir"
        source = data_lib.source_config(config, _ANY_WIDTH)
        out += [p for p in data_location.problems(source, flag) if p not in out]
    return out


def check(config, inputs=None):
    """Raises ``ConfigError`` listing every problem found; see the module docstring for
    the contract (call it after ``validate``, before the strategy, the seeds and the
    data). ``inputs``: the run's :class:`~tftransfer.training.data.Inputs`."""
    input_shape = (inputs or data_lib.DRIVER_INPUTS).input_shape(config)
    fisher, problems = _load_fisher(config)
    problems += data_problems(config)
    problems += _replica_problems(config) + channel_problems(config, input_shape)
    if any(config_lib.get(config, name) for name in MODEL_FLAGS):
        problems += _model_problems(config, fisher, input_shape)
    if problems:
        raise config_lib.ConfigError("Invalid flags, nothing was run:\n  - " +
                                     "\n  - ".join(problems))
