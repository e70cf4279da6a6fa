"""The identity of a run: every flag that changes its result, stored with its checkpoints.

A run's identity is every option of its configuration whose declared effect is
``model`` or ``result`` (:mod:`tftransfer.training.config`; never the ``output`` ones, which
change how a run is logged, saved or where it lives), flat by flag name, plus the
description of the input hook when the run has one (``inputs``: what
:meth:`tftransfer.training.data.Inputs.identity` returns, under :data:`INPUTS_KEY`). It is
written to ``<output_dir>/checkpoints/identity.json`` at the first checkpoint and checked before any
work on every restart, so an interrupted run restarted with another ``--seed``, ``--alpha``
or ``--train_steps`` stops with the differing flags instead of resuming the old weights
under the new flags; a finished run's ``results.json`` is checked the same way.

Without ``--output_dir`` a run goes to ``runs/<dataset>-<scheme>-<hash of its identity>``:
the same command always finds its own directory, two different commands never share one.

Options added after identities were first stored (``since`` in
:func:`tftransfer.training.config.option`: the segmentation task's) are left out of the
digest at their default, and an identity (or ``results.json``) stored without them reads
as if they had their default: runs of before keep their digest, directory and resumability.
"""
import hashlib
import json
import os

from tftransfer.training import config as config_lib
from tftransfer.training import results as results_lib

FILENAME = "identity.json"
INPUTS_KEY = "inputs"


class RunMismatchError(config_lib.ConfigError):
    """The output directory holds (part of) a run with other flags."""


def of(config, inputs=None):
    """The identity of ``config`` run with the input hook ``inputs`` (None: the driver's
    own): a JSON-ready dict of the options that change the result."""
    flags = config_lib.to_dict(config)
    out = {name: flags[name] for name in config_lib.names_with(config_lib.MODEL,
                                                                 config_lib.RESULT)}
    hook = inputs.identity() if inputs is not None else None
    if hook is not None:
        out[INPUTS_KEY] = hook
    return json.loads(json.dumps(out))


def record_flags(config, inputs=None):
    """The ``flags`` of the run's records (results.json, failed.json): every option by flag
    name, and the input hook's identity when there is one."""
    flags = config_lib.to_dict(config)
    hook = inputs.identity() if inputs is not None else None
    if hook is not None:
        flags[INPUTS_KEY] = hook
    return flags


def _stored_default(name):
    """The default of option ``name`` as an identity stores it (JSON)."""
    return json.loads(json.dumps(config_lib.default_value(config_lib.LEAVES[name].field)))


def digested(identity):
    """``identity`` without the options added later (:data:`tftransfer.training.config.
    LATER_OPTIONS`, e.g. the segmentation task's) that are at their default: what the
    digest hashes, so a configuration of before they existed keeps its digest."""
    return {name: value for name, value in identity.items()
            if not (name in config_lib.LATER_OPTIONS and value == _stored_default(name))}


def digest(config, inputs=None):
    """A short stable hash of the identity (12 hex digits), options added later left out
    at their default (:func:`digested`)."""
    text = json.dumps(digested(of(config, inputs)), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def default_output_dir(config, inputs=None):
    """``runs/<dataset>-<scheme>-<digest>``: one directory per identity."""
    return os.path.join("runs", f"{config.data.dataset}-{config.penalty.scheme}-"
                        f"{digest(config, inputs)}")


def differences(mine, theirs):
    """``[(flag, theirs, mine)]`` for every identity flag whose values differ (``theirs``
    may be a full flags dict: its ``output`` options are ignored)."""
    names = sorted((set(mine) | set(theirs)) - set(config_lib.names_with(config_lib.OUTPUT)))

    def stored(values, name):  # an identity stored before an option existed had its default
        if name not in values and name in config_lib.LATER_OPTIONS:
            return _stored_default(name)
        return values.get(name)

    return [(n, stored(theirs, n), stored(mine, n)) for n in names
            if stored(theirs, n) != stored(mine, n)]


def check(config, stored, what, where, inputs=None):
    """Raises :class:`RunMismatchError` when ``stored`` (an identity or a full flags dict,
    read from ``where``) differs from the identity of ``config`` with ``inputs``; ``what``
    names the stored run."""
    differ = differences(of(config, inputs), stored)
    if not differ:
        return
    listed = "\n".join(f"  --{name}: {old!r} there, {new!r} now" for name, old, new in differ)
    raise RunMismatchError(
        f"{where} belongs to {what} with other flags:\n{listed}\n"
        f"Use another --output_dir for the new flags, or delete {config.runtime.output_dir} to "
        "start over with them.")


def path(output_dir):
    return os.path.join(output_dir, "checkpoints", FILENAME)


def load(output_dir):
    """The stored identity of ``output_dir``'s checkpoints, or None when there is none."""
    where = path(output_dir)
    try:
        return results_lib.read_json_object(where)
    except results_lib.DamagedRecordError as error:
        raise RunMismatchError(
            f"{where} is damaged ({error.__cause__}); the checkpoints beside it cannot be "
            f"matched to their flags. Delete {os.path.dirname(where)} to start the run "
            "over.") from error
