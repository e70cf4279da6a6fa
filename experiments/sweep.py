"""Moved: `tftransfer sweep` (tftransfer_cli/sweep.py), kept so that
`python -m experiments.sweep` works."""
import runpy

if __name__ == "__main__":  # as python -m tftransfer_cli.sweep
    runpy.run_module("tftransfer_cli.sweep", run_name="__main__", alter_sys=True)
