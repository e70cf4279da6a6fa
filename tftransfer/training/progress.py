"""The driver's progress lines: absl logging at INFO, without the INFO chatter of its
dependencies (TensorFlow, Keras, tensorflow-datasets), whose warnings and errors still show.

Programs call :func:`show_progress` at the start of ``main`` (the driver, the experiments);
an explicit ``--verbosity`` leaves absl's settings alone.
"""
import logging as std_logging
import os

from absl import flags, logging

QUIET_PACKAGES = ("tensorflow", "keras", "tensorflow_datasets", "tf_keras", "absl")


class _QuietDependencies(std_logging.Filter):
    """Drops INFO and DEBUG records emitted by files of :data:`QUIET_PACKAGES`."""

    def filter(self, record):
        if record.levelno >= std_logging.WARNING:
            return True
        parts = os.path.normpath(record.pathname).split(os.sep)
        return not any(package in parts for package in QUIET_PACKAGES)


def show_progress():
    """Shows INFO lines of this package and of the calling program, on stderr."""
    if flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present:
        return
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    if not any(isinstance(f, _QuietDependencies) for f in handler.filters):
        handler.addFilter(_QuietDependencies())
