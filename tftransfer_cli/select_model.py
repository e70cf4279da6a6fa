"""Model selection as a command: k-fold cross-validation of alpha (and beta), then the
final runs with the chosen values on every labelled image, several seeds.

    tftransfer select --flagfile=flags/my_data.cfg --alphas=0.001,0.01,0.1 \
        --folds=3 --seeds=0,1,2 --output_dir=runs/select_my_data [--betas=0.001,0.01] \
        [--criterion=accuracy|cross_entropy]

Li et al. 2018, Section 4.1 choose alpha by cross-validation on the target training
images. The options above are this command's (given on the command line); every other
argument is a driver flag (``tftransfer train --helpfull``; ``--flagfile`` included) and
describes one run; this command varies ``--alpha`` (``--beta`` with ``--betas``),
``--cv_folds``/``--cv_fold`` and ``--seed``:

1. selection: for each value and each fold ``i < --folds`` one driver run with
   ``--cv_folds=K --cv_fold=i`` (or, with ``--folds=0``, one run with the given
   ``--validation_fraction``), trained on the other folds and evaluated on fold ``i``:
   the test images are never read (the driver evaluates such a run on its validation
   images only);
2. the validation accuracy and cross-entropy pooled over the folds
   (:mod:`tftransfer.training.selection`), the best value under ``--criterion``, ties
   broken by the other measure, then by the smaller value; the table is printed;
3. final runs with the chosen value, ``--cv_folds=0`` and no validation fraction (every
   labelled image: the kept ``--examples_per_class``), one per ``--seeds``, evaluated on
   the test split; mean +- sample std (ddof=1) printed.

Runs go to ``<output_dir>/select/<value>/fold_<i>`` and ``<output_dir>/final/seed_<s>``
(a finished run is read back, not retrained), the summary to
``<output_dir>/selection.json``. Exit status 2: invalid flags, nothing was run. Also
``python -m tftransfer_cli.select_model`` (or ``python tools/select_model.py`` in a checkout).
"""
import argparse
import os
import sys

from absl import app, logging

from tftransfer_cli.common import require_choice

TOOL_SETS = ("alpha", "beta", "cv_folds", "cv_fold", "seed")  # driver flags this command sets


def _list(kind):
    """argparse type of a comma-separated list (``--alphas=0.001,0.01``), as absl's lists."""
    def parse(text):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error
    parse.__name__ = f"comma-separated {kind.__name__} list"
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tftransfer select", description=" ".join(__doc__.split("\n\n")[0].split()),
        allow_abbrev=False,
        epilog="Every other argument is a driver flag describing one run (--flagfile "
               "included): `tftransfer train --helpfull` lists them. The command sets "
               f"{', '.join('--' + n for n in TOOL_SETS)} itself.")
    parser.add_argument("--alphas", type=_list(float), default=[0.001, 0.01, 0.1],
                        help="Strengths alpha tried (default: 0.001,0.01,0.1).")
    parser.add_argument("--betas", type=_list(float), default=[],
                        help="Strengths beta tried with every alpha (default: --beta alone).")
    parser.add_argument("--folds", type=int, default=3,
                        help="k of the k-fold cross-validation (0: one split held out by "
                             "--validation_fraction; default 3).")
    parser.add_argument("--criterion", default="accuracy",
                        help="What chooses: accuracy, the pooled validation accuracy "
                             "(highest; ties: lower cross-entropy), or cross_entropy (lowest; "
                             "ties: higher accuracy).")
    parser.add_argument("--seeds", type=_list(int), default=[0, 1, 2],
                        help="Seeds of the final runs (default: 0,1,2).")
    return parser


def plan(base, alphas, betas, folds, seeds):
    """``(selection configs, final config maker)``: the selection runs (value, fold,
    config) of ``base`` and a function of ``(value, seed)`` giving a final run's config."""
    from tftransfer.training import config as config_lib
    problems = []
    if folds and base.data.validation_fraction:
        problems.append(f"--folds={folds} and --validation_fraction are two ways to hold out "
                        "validation images: give --folds=0 to use the fraction.")
    if not folds and not base.data.validation_fraction:
        problems.append("--folds=0 needs --validation_fraction (the images held out).")
    if folds == 1 or folds < 0:
        problems.append(f"--folds={folds}: k-fold cross-validation needs K >= 2 (or 0).")
    if not seeds:
        problems.append("--seeds is empty: give the seeds of the final runs.")
    if not base.runtime.output_dir:
        problems.append("--output_dir is needed (where the selection and final runs go).")
    if problems:
        raise config_lib.ConfigError("Invalid flags, nothing was run:\n  - " +
                                     "\n  - ".join(problems))
    root = base.runtime.output_dir
    values = [{"alpha": a, "beta": b} for a in alphas for b in (betas or [base.penalty.beta])]
    runs = []
    for value in values:
        name = f"alpha={value['alpha']:g}" + (f"_beta={value['beta']:g}" if betas else "")
        for fold in range(folds or 1):
            cv = dict(cv_folds=folds, cv_fold=fold) if folds else {}
            runs.append((value, fold, config_lib.validate(config_lib.replace(
                base, **value, **cv,
                output_dir=os.path.join(root, "select", name, f"fold_{fold}")))))

    def final(value, seed):
        return config_lib.validate(config_lib.replace(
            base, **value, seed=seed, cv_folds=0, cv_fold=None, validation_fraction=0.0,
            output_dir=os.path.join(root, "final", f"seed_{seed}")))

    return runs, final


def select(base, alphas, betas, folds, seeds, criterion, run=None):
    """Runs the selection and the final runs (each with ``run(config, cache=...)``, default
    the driver's :func:`tftransfer.training.run.run`); returns the summary written to
    ``selection.json`` and the lines printed."""
    import numpy as np

    from tftransfer.io_utils import atomic_write_json
    from tftransfer.training import selection
    from tftransfer.training.model import ModelCache
    if run is None:
        from tftransfer.training.run import run
    runs, final = plan(base, alphas, betas, folds, seeds)
    for seed in seeds:  # the final runs' flags are checked before any run
        final({"alpha": alphas[0], "beta": base.penalty.beta}, seed)
    cache = ModelCache()
    records = []
    for value, fold, config in runs:
        record = run(config, cache=cache)
        records.append(record)
        logging.info(f"selection {value} fold {fold}: validation accuracy "
                     f"{record['accuracy']:.4f}, cross-entropy {record['cross_entropy']:.4f}")
    keys = ("alpha", "beta") if betas else ("alpha",)
    candidates = selection.pool(records, keys)
    chosen = selection.best(candidates, criterion, "other")
    other = selection.best(candidates, [c for c in selection.CRITERIA if c != criterion][0],
                           "other")
    lines = [f"Selection ({folds}-fold cross-validation)" if folds else
             f"Selection (validation fraction {base.data.validation_fraction:g})",
             *selection.table(candidates, chosen, criterion)]
    if other != chosen:
        lines.append(f"(the other criterion would choose {other.value})")
    value = {"alpha": chosen.value["alpha"],
             "beta": chosen.value.get("beta", base.penalty.beta)}
    final_records = [run(final(value, s), cache=cache) for s in seeds]
    accuracies = np.array([r["accuracy"] for r in final_records])
    spread = f" +- {accuracies.std(ddof=1):.4f}" if len(accuracies) > 1 else ""
    lines += ["", f"Final runs with alpha={value['alpha']:g} beta={value['beta']:g} on every "
              f"labelled image ({final_records[0]['num_train']} training images), "
              f"{final_records[0]['eval_split']} accuracy over {len(seeds)} seed(s): "
              f"{accuracies.mean():.4f}{spread} (mean +- sample std, ddof=1)"]
    lines += [f"  seed {s}: {r['accuracy']:.4f}  ({r['flags']['output_dir']})"
              for s, r in zip(seeds, final_records)]
    summary = {
        "criterion": criterion, "tie_break": "the other measure, then the smaller value",
        "folds": folds, "chosen": value,
        "candidates": [{**c.value, "folds": c.folds, "num_eval": c.num_eval,
                        "val_accuracy": c.accuracy, "val_cross_entropy": c.cross_entropy}
                       for c in candidates],
        "selection_runs": [r["flags"]["output_dir"] for r in records],
        "final": {"seeds": list(seeds), "accuracies": accuracies.tolist(),
                  "mean": float(accuracies.mean()),
                  "std_ddof1": float(accuracies.std(ddof=1)) if len(seeds) > 1 else None,
                  "eval_split": final_records[0]["eval_split"],
                  "runs": [r["flags"]["output_dir"] for r in final_records]}}
    atomic_write_json(os.path.join(base.runtime.output_dir, "selection.json"), summary)
    return summary, lines


def main(argv=None):
    """``tftransfer select [options] [driver flags]`` (``argv``: the arguments, default
    ``sys.argv[1:]``)."""
    parser = build_parser()
    args, driver_argv = parser.parse_known_args(argv)
    from tftransfer.training import flags as driver_flags
    from tftransfer.training import selection
    require_choice(parser, "--criterion", args.criterion, selection.CRITERIA)
    driver_flags.define_flags()
    app.run(lambda absl_argv: _select(args, absl_argv), argv=[sys.argv[0], *driver_argv])


def _select(args, absl_argv):
    """The command once the driver's flags are parsed (by absl, in ``app.run``)."""
    from tftransfer.training import config as config_lib
    from tftransfer.training import flags as driver_flags
    from tftransfer.training import progress
    if len(absl_argv) > 1:
        raise app.UsageError(f"Unexpected arguments {absl_argv[1:]}; every option is a --flag.")
    progress.show_progress()
    try:
        given = [f"--{name} is set by tftransfer select; drop it." for name in TOOL_SETS
                 if driver_flags.FLAGS[name].present]
        if given:
            raise config_lib.ConfigError("Invalid flags, nothing was run:\n  - " +
                                         "\n  - ".join(given))
        base = driver_flags.config_from_flags()
        _, lines = select(base, args.alphas, args.betas, args.folds, args.seeds, args.criterion)
    except config_lib.ConfigError as error:
        logging.error("%s", error)
        sys.exit(2)
    print("\n".join(lines))
    print(f"summary: {os.path.join(base.runtime.output_dir, 'selection.json')}")


if __name__ == "__main__":
    main()
