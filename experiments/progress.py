"""Progress lines of the experiments through absl logging, without TensorFlow's INFO chatter.

:func:`show_progress` sets absl's verbosity to INFO (unless ``--verbosity`` was given) and
lets INFO records through only from the ``experiments`` and ``tftransfer`` packages;
warnings and errors pass from everywhere.
"""
import logging as std_logging
import os

from absl import flags, logging

import tftransfer

_OWN = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
             for m in (tftransfer, __import__("experiments")))


class _OwnInfo(std_logging.Filter):
    def filter(self, record):
        return record.levelno >= std_logging.WARNING or record.pathname.startswith(_OWN)


def show_progress():
    """INFO lines of this repository's code on stderr; call at the start of ``main``."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)
        handler = logging.get_absl_handler()
        if not any(isinstance(f, _OwnInfo) for f in handler.filters):
            handler.addFilter(_OwnInfo())
