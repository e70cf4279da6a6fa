"""Moved: `tftransfer convert` (tftransfer_cli/convert.py), kept so that
`python tools/convert_torch_weights.py` and `python -m tools.convert_torch_weights` work."""
import runpy

if __name__ == "__main__":  # as python -m tftransfer_cli.convert
    runpy.run_module("tftransfer_cli.convert", run_name="__main__", alter_sys=True)
else:
    from tftransfer_cli.convert import main  # noqa: F401  (tools.convert_torch_weights.main, as before)
