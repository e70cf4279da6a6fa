"""The runs folder's table: one row per finished run in ``summary.csv``, appended safely.

Where: ``--summary_csv`` (``auto``, the default: ``summary.csv`` in the parent of
``--output_dir``, the runs folder; a path: that file; empty: no table). The driver appends
the row right after ``results.json`` is written (:func:`append_run`); a run found already
finished appends nothing.

A row (:func:`row`) holds, in this order: :data:`LEADING` (where and when, the run's
identity digest ``run_digest`` (the hash of its default directory) and ``config_digest``
(the same hash without ``--seed``: runs of one configuration, repeated over seeds, share
it)), :data:`METRICS` (``accuracy`` on ``eval_split`` and that accuracy again under
``test_accuracy`` or ``validation_accuracy``, the other left empty, so a column never
mixes the two splits; segmentation's ``mean_iou`` and ``pixel_accuracy``; the source task's
before/after/drop), :data:`TIMINGS` (``train_time_s``, ``images_per_s``, ``wall_time_s``
and the parts of :mod:`tftransfer.training.timing`), :data:`PROVENANCE`, then every option
of the run's identity (:mod:`tftransfer.training.identity`: the ``model`` and ``result``
options, in their declaration order; never the ``output`` ones) and ``inputs`` (the input
hook's identity) when there is one. Lists and dicts are JSON, None is empty, floats keep
full precision (``repr``).

Concurrency: several processes (a sweep) may finish at once. :func:`append` holds an
exclusive ``fcntl.flock`` on the table itself while it reads the header and writes; a row
is one ``write`` of an ``O_APPEND`` descriptor; the header is written only when the file is
new or empty. When the row has columns the header lacks (a newer version of the package),
the whole table is rewritten with the union of the columns (old rows get empty cells) to a
temporary file renamed over it, under the lock; a writer that then finds it locked the
replaced file reopens the new one (the inode is checked after each lock). A half-written
last line (a process killed inside ``write``) is dropped by the next writer. Only the
standard library is used: the driver needs no analysis extra.
"""
import csv
import errno
import fcntl
import hashlib
import io
import json
import os

from absl import logging

from tftransfer.io_utils import atomic_path
from tftransfer.training import config as config_lib
from tftransfer.training import identity as identity_lib

FILENAME = "summary.csv"
AUTO = "auto"

LEADING = ["finished_at", "output_dir", "run_digest", "config_digest"]
METRICS = ["eval_split", "accuracy", "test_accuracy", "validation_accuracy", "cross_entropy",
           "mean_iou", "pixel_accuracy", "source_accuracy_before",
           "source_accuracy_after", "source_drop", "num_train", "num_eval", "num_classes",
           "steps", "resumed_from_step"]
TIMINGS = ["train_time_s", "images_per_s", "wall_time_s", "process_s", "before_run_s",
           "run_s", "setup_s", "data_s", "model_s", "probe_s", "train_s", "eval_s",
           "export_s"]
PROVENANCE = ["method_kind", "method_scheme", "method_parameters", "replicas", "optimizer",
              "dtype_policy", "export_max_abs_diff", "git_commit", "git_dirty",
              "version_tftransfer", "version_tensorflow", "version_keras"]
SPLITS = ("test", "validation")


class SummaryError(config_lib.ConfigError):
    """``--summary_csv`` names a path that cannot be a table (a directory, under a file)."""


def path(config):
    """The table of ``config``'s run (``--summary_csv``, module docstring), or None."""
    chosen = config.runtime.summary_csv
    if not chosen:
        return None
    if chosen == AUTO:
        parent = os.path.dirname(os.path.normpath(config.runtime.output_dir))
        return os.path.join(parent, FILENAME)
    return chosen


def check(config):
    """Raises :class:`SummaryError` when the table cannot be written (before any work)."""
    where = path(config)
    if where is None:
        return
    if os.path.isdir(where):
        raise SummaryError(f"--summary_csv={where} is a directory; give a file path (e.g. "
                           f"{os.path.join(where, FILENAME)}) or --summary_csv= for none.")
    parent = os.path.dirname(os.path.abspath(where))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise SummaryError(f"--summary_csv={where}: its directory cannot be created "
                           f"({error.strerror}); pick another path or --summary_csv= for "
                           "none.") from error


def config_digest(config, inputs=None):
    """12 hex digits of the run's identity without ``--seed``: equal for the repeats of
    one configuration (the digest rule of :func:`tftransfer.training.identity.digest`)."""
    values = identity_lib.digested(identity_lib.of(config, inputs))
    values.pop("seed", None)
    text = json.dumps(values, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def row(config, inputs, record):
    """``(columns, {column: text})`` of the finished run (module docstring)."""
    identity = identity_lib.of(config, inputs)
    timings = record.get("timings") or {}
    versions = record.get("versions") or {}
    values = {"finished_at": record.get("finished_at"),
              "output_dir": config.runtime.output_dir,
              "run_digest": identity_lib.digest(config, inputs),
              "config_digest": config_digest(config, inputs)}
    values.update((name, record.get(name)) for name in METRICS)
    split = record.get("eval_split")
    score = record.get("accuracy")
    for name in SPLITS:
        values[f"{name}_accuracy"] = score if split == name else None
    values.update((name, record.get(name, timings.get(name))) for name in TIMINGS)
    values.update((name, record.get(name)) for name in PROVENANCE)
    values.update((f"version_{k}", versions.get(k)) for k in ("tftransfer", "tensorflow",
                                                              "keras"))
    extra = sorted(k for k in timings if k not in values)  # a newer phase
    values.update((k, timings[k]) for k in extra)
    values.update(identity)
    flags = [n for n in identity if n != identity_lib.INPUTS_KEY]
    hook = [identity_lib.INPUTS_KEY] if identity_lib.INPUTS_KEY in identity else []
    columns = list(dict.fromkeys(LEADING + METRICS + TIMINGS + extra + PROVENANCE + flags
                                 + hook))
    return columns, {c: _cell(values.get(c)) for c in columns}


def _line(columns, values):
    out = io.StringIO()
    csv.DictWriter(out, columns, lineterminator="\n").writerow(values)
    return out.getvalue()


def _open_locked(where):
    """A descriptor of ``where`` (created when absent) holding its exclusive lock; the
    inode is checked after locking, since a rewrite may have replaced the file."""
    while True:
        fd = os.open(where, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(where).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _read_all(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks).decode("utf-8")
        chunks.append(chunk)


def append(where, columns, values):
    """Appends the row ``values`` (``{column: text}``) to the table ``where`` under its
    lock; writes the header when the file is new, rewrites the table when ``columns`` adds
    to its header (module docstring). Returns the table's columns."""
    os.makedirs(os.path.dirname(os.path.abspath(where)), exist_ok=True)
    fd = _open_locked(where)
    try:
        text = _read_all(fd)
        if text and not text.endswith("\n"):  # a writer killed inside its write
            kept = text[:text.rfind("\n") + 1]
            logging.warning(f"{where}: dropped a half-written last line "
                            f"({len(text) - len(kept)} characters)")
            os.ftruncate(fd, len(kept.encode("utf-8")))
            text = kept
        header = next(csv.reader(io.StringIO(text)), None) if text else None
        if not header:
            os.write(fd, (",".join(columns) + "\n" + _line(columns, values)).encode("utf-8"))
            return list(columns)
        new = [c for c in columns if c not in header]
        if not new:
            os.write(fd, _line(header, {c: values.get(c, "") for c in header})
                     .encode("utf-8"))
            return header
        merged = header + new
        rows = list(csv.DictReader(io.StringIO(text)))
        with atomic_path(where) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                out = csv.DictWriter(f, merged, restval="", lineterminator="\n")
                out.writeheader()
                out.writerows(rows)
                out.writerow(values)
                f.flush()
                os.fsync(f.fileno())
        return merged
    finally:
        os.close(fd)  # releases the lock


def append_run(config, inputs, record):
    """Appends the finished run's row to its table (:func:`path`); returns the path, None
    when there is none. A table that cannot be written is logged, never fatal: the run's
    results.json is already written."""
    where = path(config)
    if where is None:
        return None
    columns, values = row(config, inputs, record)
    try:
        append(where, columns, values)
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EPERM,
                               errno.ENOENT, errno.EISDIR, errno.ENOTDIR):
            raise
        logging.warning(f"{where}: the summary row of {config.runtime.output_dir} was not "
                        f"written ({error.strerror}); results.json has every value. Fix the "
                        "path's permissions or choose another with --summary_csv.")
        return None
    return where
