"""Moved: `tftransfer tables` (tftransfer_cli/tables.py), kept so that
`python -m experiments.make_tables` works."""
import runpy

if __name__ == "__main__":  # as python -m tftransfer_cli.tables
    runpy.run_module("tftransfer_cli.tables", run_name="__main__", alter_sys=True)
