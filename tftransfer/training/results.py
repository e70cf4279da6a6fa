"""The results record ``<output_dir>/results.json``, written atomically at the end of a run.

Fields: ``flags`` (the full configuration), ``without_effect`` (the penalty options of
``flags`` that changed nothing in this run, :func:`tftransfer.training.config.without_effect`),
``git_commit`` and ``git_dirty`` of the package's checkout (None outside git),
``versions``, ``accuracy`` on ``eval_split`` (``test`` or ``validation``) with
``eval_crops`` and ``cross_entropy`` (the mean ``-log p[label]`` there, for model
selection's tie-break), the source-task accuracies before and after fine-tuning and their
drop in points (Table 5) when asked, ``steps``, ``wall_time_s`` (this process),
``train_time_s`` and ``images_per_s`` (training of this process), ``timings`` (seconds:
``process_s`` from the process start, ``before_run_s``, ``run_s`` and its parts
``setup_s``, ``data_s``, ``model_s``, ``train_s``, ``eval_s``, ``export_s``;
:mod:`tftransfer.training.timing`), ``resumed_from_step``, ``replicas``, ``optimizer`` and
``dtype_policy`` (as trained), ``export_max_abs_diff`` and ``finished_at``; the method
(:func:`tftransfer.training.methods.record`: ``method``, ``method_kind``,
``method_parameters``, ``method_scheme``), and for ``lp_ft``/``wise_ft`` ``linear_probe``
and ``wise_ft`` (the interpolation grid's scores on ``eval_split``).
A run whose record exists is finished: restarting it does not train again.

A run that stopped on a non-finite loss writes ``failed.json`` instead (flags, step,
reason): it is not finished, so a restart retries it (from its last good checkpoint) and
``tftransfer sweep`` lists it again and reports it. A damaged record is named, never
skipped.
"""
import json
import os
import subprocess
import time

import keras
import tensorflow as tf

import tftransfer
from tftransfer.io_utils import atomic_write_json
from tftransfer.training import config as config_lib

RESULTS = "results.json"
FAILED = "failed.json"


class DamagedRecordError(config_lib.ConfigError):
    """A results or failure record that is not valid JSON; the message names the file."""


def git_state(directory=None):
    """``(commit, dirty)`` of the git checkout holding the package, or ``(None, None)``."""
    directory = directory or os.path.dirname(os.path.abspath(tftransfer.__file__))
    try:
        commit = subprocess.run(["git", "-C", directory, "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", directory, "status", "--porcelain"], check=True,
                                capture_output=True, text=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def path(output_dir):
    return os.path.join(output_dir, RESULTS)


def read_json_object(where):
    """The JSON object in ``where``, None when absent; :class:`DamagedRecordError` when it
    cannot be read."""
    if not os.path.exists(where):
        return None
    try:
        with open(where, encoding="utf-8") as f:
            record = json.load(f)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise DamagedRecordError(
            f"{where} is damaged ({error}). Delete it to run again: the checkpoints beside "
            "it are kept, so the run resumes from the last one.") from error
    return record


def load(output_dir):
    """The record of a finished run in ``output_dir``, or None."""
    return read_json_object(path(output_dir))


def load_failure(output_dir):
    """The record of a previous attempt that failed (``failed.json``), or None."""
    return read_json_object(os.path.join(output_dir, FAILED))


def write_failure(output_dir, flags, step, reason):
    """Records a failed attempt (module docstring); returns the record."""
    record = {"flags": flags, "failed_at_step": step, "reason": reason,
              "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(os.path.join(output_dir, FAILED), record)
    return record


def clear_failure(output_dir):
    """Removes ``failed.json`` once the run has finished."""
    try:
        os.remove(os.path.join(output_dir, FAILED))
    except FileNotFoundError:
        pass


def write(output_dir, flags, **fields):
    """Writes the record (module docstring) atomically; returns it."""
    commit, dirty = git_state()
    record = {"flags": flags, "git_commit": commit, "git_dirty": dirty,
              "versions": {"tftransfer": tftransfer.__version__,
                           "tensorflow": tf.__version__, "keras": keras.__version__},
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    atomic_write_json(path(output_dir), record)
    return record
