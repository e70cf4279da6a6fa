"""The output directory of a run: created, checked writable and locked before any work.

:func:`claim` holds an exclusive ``fcntl.flock`` on ``<output_dir>/.lock`` for as long as the
run lasts, so two processes never train into one directory (the second stops at once with
the first one's pid); the lock goes with the process, also when it is killed. A path that
is a file, lies under a file or cannot be written stops with a
:class:`RunDirectoryError` saying which and how to fix it.
"""
import contextlib
import errno
import fcntl
import os

from tftransfer.training import config as config_lib

LOCK = ".lock"


class RunDirectoryError(config_lib.ConfigError):
    """The output directory cannot be used (not a directory, not writable, or busy)."""


def _create(output_dir):
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise RunDirectoryError(f"--output_dir={output_dir} is a file, not a directory; "
                                "pick another --output_dir.")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"--output_dir={output_dir} cannot be created "
                                f"({error.strerror}: {error.filename}); pick a writable "
                                "directory.") from error


def _open_lock(output_dir):
    lock_path = os.path.join(output_dir, LOCK)
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise RunDirectoryError(f"--output_dir={output_dir} is not writable "
                                f"({error.strerror}); fix its permissions or pick another "
                                "--output_dir.") from error


def _holder(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"


@contextlib.contextmanager
def claim(output_dir, exclusive=True):
    """Creates ``output_dir`` and holds its lock inside the ``with`` block (module
    docstring). ``exclusive=False`` (the non-chief tasks of a multi-worker run, which share
    the chief's directory) only creates it."""
    _create(output_dir)
    if not exclusive:
        yield
        return
    fd = _open_lock(output_dir)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise RunDirectoryError(
                f"--output_dir={output_dir} is in use by another run (process "
                f"{_holder(fd)}); wait for it to finish, or use another --output_dir."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        yield
    finally:
        os.close(fd)
