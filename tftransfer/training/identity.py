"""The identity of a run: every flag that changes its result, stored with its checkpoints.

A run's identity is its configuration less :data:`NOT_IDENTITY` (fields that change how a
run is logged, saved or where it lives, never what it computes). It is written to
``<output_dir>/checkpoints/identity.json`` at the first checkpoint and checked before any
work on every restart, so an interrupted run restarted with another ``--seed``, ``--alpha``
or ``--train_steps`` stops with the differing flags instead of resuming the old weights
under the new flags; a finished run's ``results.json`` is checked the same way.

Without ``--output_dir`` a run goes to ``runs/<dataset>-<scheme>-<hash of its identity>``:
the same command always finds its own directory, two different commands never share one.
"""
import hashlib
import json
import os

from tftransfer.training import config as config_lib
from tftransfer.training import results as results_lib

# Fields that never change what a run computes.
NOT_IDENTITY = ("output_dir", "verbose", "log_every", "checkpoint_every", "export",
                "save_weights")
FILENAME = "identity.json"


class RunMismatchError(config_lib.ConfigError):
    """The output directory holds (part of) a run with other flags."""


def of(config):
    """The identity of ``config``: a JSON-ready dict of the fields that change the result."""
    flags = json.loads(json.dumps(config_lib.to_dict(config)))
    return {k: v for k, v in flags.items() if k not in NOT_IDENTITY}


def digest(config):
    """A short stable hash of the identity (12 hex digits)."""
    text = json.dumps(of(config), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def default_output_dir(config):
    """``runs/<dataset>-<scheme>-<digest>``: one directory per identity."""
    return os.path.join("runs", f"{config.dataset}-{config.scheme}-{digest(config)}")


def differences(mine, theirs):
    """``[(flag, theirs, mine)]`` for every identity flag whose values differ."""
    names = sorted((set(mine) | set(theirs)) - set(NOT_IDENTITY))
    return [(n, theirs.get(n), mine.get(n)) for n in names if theirs.get(n) != mine.get(n)]


def check(config, stored, what, where):
    """Raises :class:`RunMismatchError` when ``stored`` (an identity or a full flags dict,
    read from ``where``) differs from ``config``'s identity; ``what`` names the stored run."""
    differ = differences(of(config), stored)
    if not differ:
        return
    listed = "\n".join(f"  --{name}: {old!r} there, {new!r} now" for name, old, new in differ)
    raise RunMismatchError(
        f"{where} belongs to {what} with other flags:\n{listed}\n"
        f"Use another --output_dir for the new flags, or delete {config.output_dir} to "
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
