"""Every flag of the driver, defined once from the fields of
:class:`tftransfer.training.config.RunConfig` (same names, defaults and help).

``define_flags()`` registers them (idempotent); ``config_from_flags()`` reads the parsed
values back into a validated ``RunConfig``. ``python -m tftransfer.train --helpfull``
lists them under this module.
"""
import dataclasses
import typing

from absl import flags

from tftransfer.training import config as config_lib

FLAGS = flags.FLAGS


def _help(f):
    choices = f.metadata["choices"]
    text = f.metadata["help"]
    if choices and not all(isinstance(c, str) for c in choices):
        text += f" One of {list(choices)}."
    return text


def _base_type(f):
    if typing.get_origin(f.type) is list:
        return list
    return f.metadata["kind"] or type(f.default)


def define_flags(flag_values=FLAGS):
    """Registers one absl flag per ``RunConfig`` field in ``flag_values`` (once)."""
    for f in dataclasses.fields(config_lib.RunConfig):
        if f.name in flag_values:
            continue
        kind, help_text = _base_type(f), _help(f)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        choices = f.metadata["choices"]
        if kind is list:
            flags.DEFINE_list(f.name, [str(v) for v in default], help_text,
                              flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(f.name, default, help_text, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(f.name, default, help_text, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(f.name, default, help_text, flag_values=flag_values)
        elif choices and all(isinstance(c, str) for c in choices):
            flags.DEFINE_enum(f.name, default, list(choices), help_text,
                              flag_values=flag_values)
        else:
            flags.DEFINE_string(f.name, default, help_text, flag_values=flag_values)


def _convert(f, value):
    if typing.get_origin(f.type) is list:
        kind = f.metadata["kind"] or str
        try:
            return [kind(v) for v in value]
        except ValueError as error:
            raise config_lib.ConfigError(f"--{f.name}={','.join(value)}: every entry must be "
                                         f"a {kind.__name__} ({error}).") from error
    if value == "" and f.default is None:
        return None  # --weights= clears a path set by an earlier flagfile
    return value


def config_from_flags(flag_values=FLAGS, validate=True):
    """The :class:`RunConfig` of the parsed flags, validated unless ``validate=False``."""
    values = {f.name: _convert(f, flag_values[f.name].value)
              for f in dataclasses.fields(config_lib.RunConfig)}
    config = config_lib.RunConfig(**values)
    return config_lib.validate(config) if validate else config
