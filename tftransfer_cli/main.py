"""``tftransfer <command> [args]``: every command of the project behind one console script.

``tftransfer train --flagfile=flags/demo_l2_sp.cfg`` runs exactly what ``python -m
tftransfer.train --flagfile=flags/demo_l2_sp.cfg`` runs: the command's module is executed as
``__main__`` with the remaining arguments (:data:`COMMANDS` maps each name to its module).
``tftransfer``, ``tftransfer --help`` list the commands (exit status 2 without a command, 0
for ``--help``); ``tftransfer <command> --help`` is that command's help. Nothing here
imports TensorFlow: the command's module is imported only once it is known.
"""
import importlib.util
import runpy
import sys

PROG = "tftransfer"
# name -> (module run as __main__, one line of help)
COMMANDS = {
    "train": ("tftransfer.train",
              "train and evaluate one run (one table cell) from flags or a --flagfile"),
    "select": ("tftransfer_cli.select_model",
               "choose alpha (and beta) by k-fold cross-validation, then the final runs"),
    "convert": ("tftransfer_cli.convert",
                "convert a PyTorch checkpoint into a Keras weights file (no torch needed)"),
    "fisher": ("tftransfer_cli.fisher",
               "compute the diagonal Fisher of a source model on source inputs (.npz)"),
    "prepare": ("tftransfer_cli.prepare",
                "prepare a dataset once (uint8 shards) and store its training mean"),
    "tables": ("tftransfer_cli.tables",
               "print Tables 2, 4 and 5 from run directories beside the paper's numbers"),
    "sweep": ("tftransfer_cli.sweep", "run a grid of driver runs from one flagfile"),
}


def usage():
    """The text of ``tftransfer --help``: one line per command."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {PROG} <command> [args]   ({PROG} <command> --help: its options)",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def main(argv=None):
    """Runs ``tftransfer <command> [args]`` (``argv``: the arguments after ``tftransfer``,
    default ``sys.argv[1:]``); returns the exit status of a command that returns."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        sys.stderr.write(f"{PROG}: a command is needed.\n\n" + usage())
        return 2
    command, args = argv[0], argv[1:]
    if command in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0
    if command not in COMMANDS:
        sys.stderr.write(f"{PROG}: unknown command {command!r}.\n\n" + usage())
        return 2
    module = COMMANDS[command][0]
    if not _installed(module):
        sys.stderr.write(f"{PROG} {command}: its module {module} is not installed here; it "
                         "ships with a checkout of the repository: run "
                         f"`python -m {module}` from the checkout's root.\n")
        return 2
    sys.argv = [module, *args]  # runpy makes argv[0] the module's file, as python -m does
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
