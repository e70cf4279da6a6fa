"""Moved: `tftransfer select` (tftransfer_cli/select_model.py), kept so that
`python tools/select_model.py` and `python -m tools.select_model` work."""
import runpy

if __name__ == "__main__":  # as python -m tftransfer_cli.select_model
    runpy.run_module("tftransfer_cli.select_model", run_name="__main__", alter_sys=True)
else:
    from tftransfer_cli.select_model import main  # noqa: F401  (tools.select_model.main, as before)
