"""The paper's experimental section at CPU scale, on Fashion-MNIST, as independent parts and
one report.

    python -m experiments.cpu_study --part=sources        # one part (each <= 60 min, 2 cores)
    python -m experiments.cpu_study --part=main_contained,main_near
    python -m experiments.cpu_study                       # every part, in order
    python -m experiments.cpu_study --quick               # every part at toy size, < 5 min
    python -m experiments.cpu_study --quick --methods none,l2_sp,delta,bss,spd   # any methods

Runs the parts of :mod:`experiments.cpu_study.parts` through the driver
(``tftransfer.training.run.run``), keeps each run under ``--output_dir`` (a finished run is
reused, so an interrupted part resumes where it stopped), writes each part's tables as CSV
and ``part.json`` to ``<report_dir>/parts/<part>/``, then the report ``README.md`` and its
figures, generated from every part's CSV files only (:mod:`experiments.cpu_study.report`).
``--report_only`` redraws the report from existing CSV files.
"""
import os
import shlex
import sys
import time

from absl import app, flags, logging

from tftransfer.training import help as help_lib
from tftransfer.training import progress

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Reduced study, a smoke run of every part: one split (far), "
                  "20 images per class, two seeds, 2 folds, 30-60 iterations, two alphas; "
                  "under 5 minutes.")
flags.DEFINE_list("part", None, "Only these parts (experiments.cpu_study.parts.PARTS: "
                  "sources, main_far, main_near, main_contained, axes, imagenet, ...). "
                  "Default: every part, in that order.")
flags.DEFINE_string("data_dir", None, "Directory with the Fashion-MNIST IDX files (default: "
                    "Keras cache, then /usr/share/datasets/fashion-mnist).")
flags.DEFINE_string("output_dir", None, "Where every run goes (default runs/cpu_study, or "
                    "runs/cpu_study_quick with --quick).")
flags.DEFINE_string("report_dir", None, "Where README.md, the CSV files and figures go "
                    "(default docs/cpu_study, or runs/cpu_study_quick/report with --quick).")
flags.DEFINE_integer("workers", 2, "Worker processes (each with cores/workers threads).")
flags.DEFINE_bool("imagenet", True, "Include the ImageNet EfficientNet-Lite0 arm.")
flags.DEFINE_list("methods", None, "Only these methods, any of "
                  "experiments.cpu_study.protocol.ALL_METHODS: the study's default "
                  "(DEFAULT_METHODS) and every method of tftransfer.methods by its registry "
                  "name, e.g. delta,bss,lwf,spd (docs/methods.md). Default: DEFAULT_METHODS. "
                  "A part with its own method list (methods_<split>, checkpoints) keeps only "
                  "these, and is skipped when none is left.")
flags.DEFINE_bool("report_only", False, "Only regenerate the report from the CSV files.")


def main(argv):
    del argv
    progress.show_progress()
    from experiments.cpu_study import experiments, protocol, report

    quick = FLAGS.quick
    output_dir = FLAGS.output_dir or os.path.join("runs", "cpu_study_quick" if quick
                                                  else "cpu_study")
    report_dir = FLAGS.report_dir or (os.path.join(output_dir, "report") if quick
                                      else os.path.join("docs", "cpu_study"))
    if not FLAGS.report_only:
        from tftransfer.training import config as config_lib, data_location

        try:  # before any work, as the driver: a --data_dir without the data is refused
            data_location.check_data_dir(FLAGS.data_dir)
        except config_lib.ConfigError as error:
            logging.error("%s", error)
            sys.exit(2)
        settings = experiments.Settings(**(experiments.QUICK if quick else {}))
        settings.workers, settings.imagenet = FLAGS.workers, FLAGS.imagenet
        if FLAGS.methods:
            unknown = sorted(set(FLAGS.methods) - set(protocol.ALL_METHODS))
            if unknown:
                raise app.UsageError(f"--methods: unknown {unknown}; choose from "
                                     f"{list(protocol.ALL_METHODS)}.")
            settings.methods = tuple(m for m in protocol.ALL_METHODS if m in FLAGS.methods)
        from experiments.cpu_study import parts as parts_lib, pool as pool_lib

        try:
            chosen = parts_lib.check(FLAGS.part or parts_lib.names())
        except ValueError as error:
            raise app.UsageError(str(error))
        given = [a for a in sys.argv[1:] if not a.startswith("--part")]
        pool = pool_lib.Pool(settings.workers)
        try:
            for name in chosen:  # each part's command names it alone: rerun it by itself
                command = "python -m experiments.cpu_study" + "".join(
                    f" {shlex.quote(a)}" for a in given + [f"--part={name}"])
                run_part(parts_lib.PARTS[name], settings, output_dir, report_dir, command,
                         pool, quick)
        finally:
            pool.close()
    started = time.time()
    path = report.write_report(report_dir)
    logging.info(f"report: {path} ({time.time() - started:.0f} s to draw)")


def run_part(part, settings, output_dir, report_dir, command, pool, quick):
    """Runs ``part`` (a :class:`experiments.cpu_study.parts.Part`) on ``settings`` restricted to
    the splits it covers; a part with no split left (``--quick``) is skipped."""
    import dataclasses

    from experiments.cpu_study import experiments

    if part.name == "imagenet" and not settings.imagenet:
        logging.info(f"part {part.name}: skipped (--noimagenet)")
        return
    splits = part.covered_splits(settings.splits)
    if not splits:
        logging.info(f"part {part.name}: skipped (it covers {part.splits}, these settings "
                     f"{settings.splits})")
        return
    settings = dataclasses.replace(settings, splits=splits)
    module = part.load()
    modules = ()
    if module is not None:
        config = module.Config(**(module.QUICK if quick else {}))
        if FLAGS.methods and "methods" in {f.name for f in dataclasses.fields(config)}:
            kept = tuple(m for m in config.methods if m in FLAGS.methods)  # --methods rules
            if not kept:
                logging.info(f"part {part.name}: skipped (none of its methods "
                             f"{config.methods} in --methods)")
                return
            config = dataclasses.replace(config, methods=kept)
        modules = ((module, config),)
    logging.info(f"=== part {part.name}")
    started = time.time()
    experiments.Study(settings, output_dir, FLAGS.data_dir, report_dir, command, part.name,
                      pool).run(part.phases, modules)
    logging.info(f"=== part {part.name} done in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    help_lib.run(main)  # --help: this program's flags, exit 0
