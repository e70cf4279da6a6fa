"""Expands a grid of flag values x seeds into one driver command line per run.

    tftransfer sweep --flagfile=flags/figure1_stanford_dogs120_l2_sp.cfg \
        --grid=alpha=0.001,0.01,0.1 --grid=beta=0.001,0.01 --seeds=5 > runs.txt
    bash runs.txt                         # or: parallel < runs.txt, or a job array (one line
                                          # per task: sed -n "${SLURM_ARRAY_TASK_ID}p" runs.txt)

Each run gets its own output directory, ``<output_dir of the flagfile>/<name>=<value>/.../
seed=<s>`` (or ``--output_root``). Runs whose ``results.json`` exists are skipped (counted on
stderr), so rerunning the sweep after a partial pass lists only what is left; a run that was
interrupted is listed again and resumes from its checkpoint; a run that diverged
(``failed.json``) is listed again and reported on stderr with its step and reason.
"""
import argparse
import itertools
import json
import os
import shlex
import sys


def flagfile_value(path, name):
    """The last ``--name=value`` in ``path`` or the flagfiles it includes (as absl reads them)."""
    value = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("--flagfile="):
                nested = flagfile_value(line.split("=", 1)[1], name)
                value = nested if nested is not None else value
            elif line.startswith(f"--{name}="):
                value = line.split("=", 1)[1]
    return value


def parse_grid(entries):
    """``["alpha=0.1,1", ...]`` -> ``[("alpha", ["0.1", "1"]), ...]``."""
    grid = []
    for entry in entries:
        name, sep, values = entry.partition("=")
        if not sep or not name or not values:
            raise SystemExit(f"--grid {entry!r}: expected NAME=V1,V2,... e.g. alpha=0.01,0.1")
        grid.append((name, values.split(",")))
    return grid


def commands(flagfile, grid, seeds, output_root, python=sys.executable):
    """``[(output_dir, command)]`` for every grid point and seed."""
    out = []
    names = [name for name, _ in grid]
    for values in itertools.product(*[v for _, v in grid]):
        for seed in seeds:
            parts = [f"{n}={v}" for n, v in zip(names, values)] + [f"seed={seed}"]
            output_dir = os.path.join(output_root, *parts)
            flags = [f"--flagfile={flagfile}"] + [f"--{p}" for p in parts] + [
                f"--output_dir={output_dir}"]
            out.append((output_dir, " ".join(shlex.quote(a) for a in
                                             [python, "-m", "tftransfer.train", *flags])))
    return out


def previous_failure(output_dir):
    """``'step N: reason'`` of a run's failed attempt (``failed.json``), or None."""
    path = os.path.join(output_dir, "failed.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        return f"step {record['failed_at_step']}: {record['reason']}"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{path} is damaged ({error})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flagfile", required=True, help="base flagfile of the experiment")
    parser.add_argument("--grid", action="append", default=[],
                        help="NAME=V1,V2,... (repeatable): values of one flag")
    parser.add_argument("--seeds", default="1",
                        help="number of seeds (0..N-1), or a comma-separated list")
    parser.add_argument("--output_root", help="default: the flagfile's --output_dir")
    parser.add_argument("--python", default="python", help="interpreter in the commands")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.flagfile):
        raise SystemExit(f"--flagfile {args.flagfile} does not exist (run from the repository "
                         "root: flagfiles include others by relative path).")
    seeds = (list(range(int(args.seeds))) if args.seeds.isdigit()
             else [int(s) for s in args.seeds.split(",")])
    root = args.output_root or flagfile_value(args.flagfile, "output_dir")
    if not root:
        raise SystemExit("The flagfile sets no --output_dir; pass --output_root.")
    todo = skipped = 0
    failed = []
    for output_dir, command in commands(args.flagfile, parse_grid(args.grid), seeds, root,
                                        args.python):
        if os.path.exists(os.path.join(output_dir, "results.json")):
            skipped += 1
            continue
        failure = previous_failure(output_dir)
        if failure:
            failed.append(f"#   {output_dir}: {failure}")
        todo += 1
        print(command)
    print(f"# {todo} run(s) to do, {skipped} already finished (results.json present), "
          f"{len(failed)} failed before (failed.json; retried)", file=sys.stderr)
    for line in failed:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
