"""Moved: `tftransfer fisher` (tftransfer_cli/fisher.py), kept so that
`python tools/compute_fisher.py` and `python -m tools.compute_fisher` work."""
import runpy

if __name__ == "__main__":  # as python -m tftransfer_cli.fisher
    runpy.run_module("tftransfer_cli.fisher", run_name="__main__", alter_sys=True)
else:
    from tftransfer_cli.fisher import main  # noqa: F401  (tools.compute_fisher.main, as before)
