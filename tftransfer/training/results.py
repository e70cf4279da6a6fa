"""The results record ``<output_dir>/results.json``, written atomically at the end of a run.

Fields: ``flags`` (the full configuration), ``git_commit`` and ``git_dirty`` of the
package's checkout (None outside git), ``versions``, ``accuracy`` on ``eval_split``
(``test`` or ``validation``) with ``eval_crops``, the source-task accuracies before and
after fine-tuning and their drop in points (Table 5) when asked, ``steps``,
``wall_time_s`` (this process), ``train_time_s`` and ``images_per_s`` (training of this
process), ``resumed_from_step``, ``replicas``, ``optimizer`` and ``dtype_policy`` (as
trained), ``export_max_abs_diff`` and ``finished_at``.
A run whose record exists is finished: restarting it does not train again.
"""
import json
import os
import subprocess
import time

import keras
import tensorflow as tf

import tftransfer
from tftransfer.io_utils import atomic_write_json

RESULTS = "results.json"


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


def load(output_dir):
    """The record of a finished run in ``output_dir``, or None."""
    if not os.path.exists(path(output_dir)):
        return None
    with open(path(output_dir)) as f:
        return json.load(f)


def write(output_dir, flags, **fields):
    """Writes the record (module docstring) atomically; returns it."""
    commit, dirty = git_state()
    record = {"flags": flags, "git_commit": commit, "git_dirty": dirty,
              "versions": {"tftransfer": tftransfer.__version__,
                           "tensorflow": tf.__version__, "keras": keras.__version__},
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    atomic_write_json(path(output_dir), record)
    return record
