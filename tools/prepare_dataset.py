"""Moved: `tftransfer prepare` (tftransfer_cli/prepare.py), kept so that
`python tools/prepare_dataset.py` and `python -m tools.prepare_dataset` work."""
import runpy

if __name__ == "__main__":  # as python -m tftransfer_cli.prepare
    runpy.run_module("tftransfer_cli.prepare", run_name="__main__", alter_sys=True)
else:
    from tftransfer_cli.prepare import main  # noqa: F401  (tools.prepare_dataset.main, as before)
