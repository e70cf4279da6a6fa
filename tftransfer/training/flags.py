"""Every flag of the driver, defined once from the options of
:class:`tftransfer.training.config.RunConfig` (same flat names, defaults and help).

``define_flags()`` registers them (idempotent); ``config_from_flags()`` reads the parsed
values back into a validated ``RunConfig``. Each flag is filed under the module name of its
section (:func:`section_module`: ``tftransfer.training.config.model``, ``.data``,
``.data.synthetic``, ...): ``python -m tftransfer.train --help`` lists them by section
(:mod:`tftransfer.training.help`), ``--helpfull`` with absl's and TensorFlow's. Flags the
driver no longer has (:data:`REMOVED`) are still accepted by the parser so that a flagfile
using one stops with a message saying what replaced it.
"""
import typing

from absl import flags

from tftransfer.training import config as config_lib

FLAGS = flags.FLAGS
HOOK = "the input hook of tftransfer.training.run.run (tftransfer.training.data.Inputs, " \
       "docs/driver.md)"
# name -> (flag type, what replaced it)
REMOVED = {
    "test_examples_per_class": (int, f"evaluating on part of the test set is an option of "
                                f"{HOOK}"),
    "source_eval_classes": (list, f"the source task's classes are an option of {HOOK}"),
}
REMOVED_MODULE = "tftransfer.training.flags (removed)"


def _help(f):
    choices = f.metadata["choices"]
    text = f.metadata["help"]
    if choices and not all(isinstance(c, str) for c in choices):
        text += f" One of {list(choices)}."
    return text


def _base_type(f):
    if typing.get_origin(f.type) is list:
        return list
    return f.metadata["kind"] or f.type


def _define(kind, name, default, help_text, flag_values, module_name, choices=None):
    common = dict(flag_values=flag_values, module_name=module_name)
    if kind is list:
        flags.DEFINE_list(name, [str(v) for v in default], help_text, **common)
    elif kind is bool:
        flags.DEFINE_bool(name, default, help_text, **common)
    elif kind is int:
        flags.DEFINE_integer(name, default, help_text, **common)
    elif kind is float:
        flags.DEFINE_float(name, default, help_text, **common)
    elif choices and all(isinstance(c, str) for c in choices):
        flags.DEFINE_enum(name, default, list(choices), help_text, **common)
    else:
        flags.DEFINE_string(name, default, help_text, **common)


def section_module(leaf):
    """The module name a flag is filed under in the help: its section's dotted path under
    ``tftransfer.training.config`` (``.data.synthetic`` for ``--synthetic_classes``)."""
    return "tftransfer.training.config." + ".".join(leaf.path[:-1])


def define_flags(flag_values=FLAGS):
    """Registers one absl flag per ``RunConfig`` option in ``flag_values`` (once), grouped
    in the help by section, and the :data:`REMOVED` flags."""
    for name, leaf in config_lib.LEAVES.items():
        if name in flag_values:
            continue
        f = leaf.field
        _define(_base_type(f), name, config_lib.default_value(f), _help(f), flag_values,
                section_module(leaf), f.metadata["choices"])
    for name, (kind, replacement) in REMOVED.items():
        if name not in flag_values:
            default = [] if kind is list else kind()
            _define(kind, name, default, f"Removed: {replacement}.", flag_values,
                    REMOVED_MODULE)


def _convert(name, f, value):
    if typing.get_origin(f.type) is list:
        kind = f.metadata["kind"] or str
        try:
            return [kind(v) for v in value]
        except ValueError as error:
            raise config_lib.ConfigError(f"--{name}={','.join(value)}: every entry must be "
                                         f"a {kind.__name__} ({error}).") from error
    if value == "" and f.default is None:
        return None  # --weights= clears a path set by an earlier flagfile
    return value


def removed_problems(flag_values=FLAGS):
    """One message per :data:`REMOVED` flag given in ``flag_values``."""
    return [f"--{name} was removed from the driver: {replacement}; drop it from the command "
            "or flagfile." for name, (_, replacement) in REMOVED.items()
            if name in flag_values and flag_values[name].present]


def config_from_flags(flag_values=FLAGS, validate=True):
    """The :class:`RunConfig` of the parsed flags, validated unless ``validate=False``
    (a removed flag is always an error)."""
    problems = removed_problems(flag_values)
    if problems:
        raise config_lib.ConfigError("Invalid flags, nothing was run:\n  - " +
                                     "\n  - ".join(problems))
    values = {name: _convert(name, leaf.field, flag_values[name].value)
              for name, leaf in config_lib.LEAVES.items()}
    config = config_lib.make(**values)
    return config_lib.validate(config) if validate else config
