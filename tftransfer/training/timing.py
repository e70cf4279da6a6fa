"""Wall-clock timings of a run for ``results.json``: the whole process and its parts.

``process_start()`` is when this process started (Linux: its start time in
``/proc/self/stat`` plus the boot time of ``/proc/stat``; elsewhere the time this module
was first imported), so ``timings["process_s"]`` includes the Python and TensorFlow
imports. :class:`Phases` accumulates the seconds of the named parts of a run.
"""
import os
import time

_IMPORTED = time.time()


def process_start():
    """Seconds since the epoch at which this process started (see the module docstring)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime), counted after the command name
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        return min(started, _IMPORTED)
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


class Phases:
    """Seconds per part of a run: ``with phases("train"): ...`` adds ``train_s``;
    ``as_dict()`` adds ``process_s`` (process start to now), ``before_run_s`` (process
    start to the run's start: imports and flag parsing, and the earlier runs of the same
    process) and ``run_s`` (the run's start to now)."""

    def __init__(self):
        self.started = time.time()
        self.seconds = {}

    def __call__(self, name):
        phases = self

        class _Phase:
            def __enter__(self):
                self.start = time.time()

            def __exit__(self, *exc):
                phases.seconds[name] = phases.seconds.get(name, 0.0) + time.time() - self.start

        return _Phase()

    def as_dict(self):
        now = time.time()
        start = process_start()
        out = {"process_s": now - start, "before_run_s": self.started - start,
               "run_s": now - self.started}
        out.update((f"{name}_s", value) for name, value in self.seconds.items())
        return out
