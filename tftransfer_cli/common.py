"""What the commands share: the choices check that argparse cannot do before the command's
heavy import (the choices are defined by the library, which imports TensorFlow)."""


def require_choice(parser, flag, value, choices):
    """argparse's own ``invalid choice`` error (usage, exit status 2) unless ``value`` is in
    ``choices``; called once the module defining ``choices`` is imported."""
    if value not in choices:
        parser.error(f"argument {flag}: invalid choice: {value!r} (choose from "
                     f"{', '.join(repr(c) for c in sorted(choices))})")
