"""``python -m tftransfer_cli <command> [args]``: the same as ``tftransfer <command> [args]``."""
import sys

from tftransfer_cli.main import main

sys.exit(main())
