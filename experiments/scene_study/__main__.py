"""The CPU-scale segmentation study: one command, one page with its figure.

    python -m experiments.scene_study            # full study, about 15 minutes on 2 cores
    python -m experiments.scene_study --quick    # smoke run of every step (tiny, seconds)

Runs every phase of :mod:`experiments.scene_study.study` through the driver
(``tftransfer.training.run.run``), keeps each run under ``--output_dir`` (a finished run is
reused), the source network under ``--source_root`` (default: the classification study's
``runs/cpu_study``, so both studies share one source network), writes the
``segmentation_*`` tables and the figure's masks to ``--report_dir``, then
``segmentation.md`` and its PNG from those files only (:mod:`.report`); ``--report_only``
redraws the page from existing files.
"""
import os
import shlex
import sys
import time

from absl import flags, logging

from tftransfer.training import help as help_lib
from tftransfer.training import progress

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Smoke run of every step: 24 training and 8 test scenes, "
                  "4 steps, alpha 0.01 only, 2 seeds, a briefly trained source.")
flags.DEFINE_string("data_dir", None, "Directory with the Fashion-MNIST IDX files (default: "
                    "Keras cache, then /usr/share/datasets/fashion-mnist).")
flags.DEFINE_string("output_dir", None, "Where every target run goes (default "
                    "runs/scene_study, or runs/scene_study_quick with --quick).")
flags.DEFINE_string("source_root", None, "Root of the source run (<root>/sources/far): "
                    "default runs/cpu_study, the classification study's, so that its source "
                    "network is reused (with --quick: --output_dir).")
flags.DEFINE_string("report_dir", None, "Where segmentation.md, its figure and tables go "
                    "(default docs/cpu_study/parts/segmentation, the CPU study's segmentation "
                    "part, or <output_dir>/report with --quick).")
flags.DEFINE_integer("workers", 2, "Worker processes (each with cores/workers threads).")
flags.DEFINE_bool("report_only", False, "Only redraw the page from the existing files.")


def main(argv):
    del argv
    progress.show_progress()
    from experiments.scene_study import protocol, report, study

    quick = FLAGS.quick
    output_dir = FLAGS.output_dir or os.path.join("runs", "scene_study_quick" if quick
                                                  else "scene_study")
    report_dir = FLAGS.report_dir or (
        os.path.join(output_dir, "report") if quick
        else os.path.join("docs", "cpu_study", "parts", "segmentation"))
    if not FLAGS.report_only:
        from tftransfer.training import config as config_lib, data_location

        try:  # before any work, as the driver: a --data_dir without the data is refused
            data_location.check_data_dir(FLAGS.data_dir)
        except config_lib.ConfigError as error:
            logging.error("%s", error)
            sys.exit(2)
        source_root = FLAGS.source_root or (output_dir if quick
                                            else os.path.join("runs", "cpu_study"))
        settings = protocol.Settings(**(protocol.QUICK if quick else {}))
        settings.workers = FLAGS.workers
        command = "python -m experiments.scene_study" + "".join(
            f" {shlex.quote(a)}" for a in sys.argv[1:])
        study.Study(settings, output_dir, source_root, FLAGS.data_dir, report_dir,
                    command).run()
    started = time.time()
    path = report.write_report(report_dir)
    logging.info(f"report: {path} ({time.time() - started:.0f} s to draw)")


if __name__ == "__main__":
    help_lib.run(main)  # --help: this program's flags, exit 0
