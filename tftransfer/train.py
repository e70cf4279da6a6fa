"""The driver: one command per experiment (one cell of a table of the paper).

    python -m tftransfer.train --flagfile=flags/table2_stanford_dogs120_l2_sp.cfg [--seed=1 ...]

Every flag is defined in :mod:`tftransfer.training.flags`; ``--help`` lists them by section
with their help and defaults (``--helpfull`` adds absl's and TensorFlow's); invalid
combinations stop before any work with a message saying what to fix.
Restarting the same command after a crash resumes from the last checkpoint; restarting a
finished run prints its result without training; restarting with other flags into the
same ``--output_dir`` stops with the differing flags. Exit status: 0 done (and ``--help``),
2 invalid flags or an unusable output directory (nothing was run), 3 training diverged
(``failed.json`` says where; the last good checkpoint is kept). See docs/driver.md.
"""
import sys

from absl import app, logging

from tftransfer.training import config as config_lib
from tftransfer.training import flags as flags_lib
from tftransfer.training import help as help_lib

flags_lib.define_flags()

USAGE = """\
Usage: python -m tftransfer.train [--flagfile=FILE ...] [--flag=value ...]
  (run from the repository root: flagfiles include flags/common.cfg by relative path)
Example:
  python -m tftransfer.train --flagfile=flags/table2_stanford_dogs120_l2_sp.cfg --seed=1"""


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    from tftransfer.training import progress
    from tftransfer.training.callbacks import Diverged
    from tftransfer.training.run import run
    progress.show_progress()
    try:
        run(flags_lib.config_from_flags())
    except config_lib.ConfigError as error:
        logging.error("%s", error)
        sys.exit(2)
    except Diverged as error:
        logging.error("%s. The last good checkpoint is kept and failed.json records the "
                      "attempt; the same command retries it. To change flags (e.g. a lower "
                      "--learning_rate), use another --output_dir.", error)
        sys.exit(3)


def cli() -> None:
    """The command line of the driver (``python -m tftransfer.train``, or a console entry
    point): ``--help`` lists the driver's flags by section (:mod:`tftransfer.training.help`)."""
    help_lib.run(main, USAGE, key_flags=config_lib.LEAVES)


if __name__ == "__main__":
    cli()
