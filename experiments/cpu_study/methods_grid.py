"""Part ``methods_<split>``: every method of issue 19 (the registry of
:mod:`tftransfer.methods`) with its own hyper-parameter chosen by k-fold cross-validation,
then tested over seeds, each read against plain fine-tuning (``none``).

The selected hyper-parameter of each method is one driver flag (:data:`KNOBS`), tried on
a small grid around the registry default (:func:`grid`):

- ``delta_fm``, ``delta`` (``--delta_alpha``), ``bss`` (``--bss_eta``), ``lwf``
  (``--lwf_lambda``), ``co_tuning`` (``--co_tuning_lambda``), ``spd``
  (``--spd_strength``): the default x {0.1, 1, 10};
- ``mars_pgm``, ``frobenius_pgm`` (``--pgm_gamma``, a radius): the default x {0.01, 0.1, 1},
  because plain fine-tuning of 300 steps moves the inherited kernels by an RMS of about
  0.01 per weight (``docs/cpu_study/runs.csv``, column ``distance``), so the default ball
  (5) is barely reached and larger radii would equal plain fine-tuning;
- ``stochnorm`` (``--stochnorm_p``, a probability): {0.1, 0.5, 0.9};
- ``l2_sp_k``, ``group_lasso_sp_layer`` (``--alpha``): the default x {1e-3, 1e-2, 1e-1}
  = {1e-4, 1e-3, 1e-2}, the part of the study's alpha grid where its penalties' choices fall;
- ``lp_ft`` (``--probe_l2``, default 0): {0, 0.01, 0.1};
- ``wise_ft`` (``--wise_ft_alpha``): the paper's grid 0, 0.1, ..., 1 (the registry's
  ``wise_ft.DEFAULT_GRID``), all evaluated inside one run per fold (``--wise_ft_grid``: the
  interpolation happens after training), so its selection costs one run per fold.

Selection (:func:`choose`): one run per value and fold with ``--cv_folds=K --cv_fold=i``
(trained on the other folds of the labelled target images, evaluated on fold ``i``; the
test images are never read); the folds pooled by
:func:`tftransfer.training.selection.pool` (pooled validation accuracy and cross-entropy);
the best pooled accuracy wins, ties go to the lower pooled cross-entropy, then to the
*weaker* value (the one nearer plain fine-tuning: the smaller strength, the larger radius
or probability ``p``, the larger WiSE-FT ``a``). A record not evaluated on validation
images is refused. Finals (:func:`final_configs`): the chosen value, every labelled image,
``seeds`` seeds, tested on the test images; ``none`` likewise (the reference).

:func:`method_fields_with` is :func:`protocol.method_fields` with the method's value set.
Tables: ``methods_selection`` (one row per method and value: pooled validation accuracy
and cross-entropy, folds, chosen) and ``methods_runs`` (one row per final run).
"""
import dataclasses
import math
import os
from typing import Optional, Tuple

from tftransfer import methods as methods_lib
from tftransfer.methods import wise_ft as wise_ft_lib
from tftransfer.training import config as config_lib
from tftransfer.training import selection as selection_lib
from experiments.cpu_study import protocol
from experiments.cpu_study.protocol import BETA, SMALL, SPLITS, Target

NAME = "methods"
TABLES = ("methods_selection", "methods_runs")
CUT = ("Each method's hyper-parameter is chosen on a 3-point grid around the registry "
       "default (WiSE-FT: the paper's 11 coefficients, one run per fold) by 3-fold "
       "cross-validation (the penalties use 5) on one split per part, where the papers "
       "search wider grids (often with the learning rate) by cross-validation or a "
       "held-out set; the other hyper-parameters stay at the registry defaults.")
REFERENCE = "none"   # plain fine-tuning: what every method is read against


@dataclasses.dataclass(frozen=True)
class Knob:
    """The selected hyper-parameter of a method: its driver ``flag``, the ``values``
    tried, which end is ``weaker`` (nearer plain fine-tuning: ``"smaller"`` or
    ``"larger"``), ``why`` the grid is what it is, and ``in_run``: the whole grid is
    evaluated by one run (WiSE-FT)."""
    flag: str
    values: Tuple[float, ...]
    weaker: str
    why: str
    in_run: bool = False

    def __post_init__(self):
        if self.weaker not in ("smaller", "larger"):
            raise ValueError(f"{self}: weaker must be 'smaller' or 'larger'.")


def _around(method, name, factors):
    default = methods_lib.get(method).hyper_parameters[name]
    return tuple(float(f"{default * f:.6g}") for f in factors)


_X10 = (0.1, 1.0, 10.0)
KNOBS = {
    "delta_fm": Knob("delta_alpha", _around("delta_fm", "alpha", _X10), "smaller",
                     "default x {0.1, 1, 10}"),
    "delta": Knob("delta_alpha", _around("delta", "alpha", _X10), "smaller",
                  "default x {0.1, 1, 10}"),
    "bss": Knob("bss_eta", _around("bss", "eta", _X10), "smaller", "default x {0.1, 1, 10}"),
    "lwf": Knob("lwf_lambda", _around("lwf", "lambda", _X10), "smaller",
                "default x {0.1, 1, 10}"),
    "co_tuning": Knob("co_tuning_lambda", _around("co_tuning", "lambda", _X10), "smaller",
                      "default x {0.1, 1, 10}"),
    "spd": Knob("spd_strength", _around("spd", "strength", _X10), "smaller",
                "default x {0.1, 1, 10}"),
    "mars_pgm": Knob("pgm_gamma", _around("mars_pgm", "gamma", (0.01, 0.1, 1.0)), "larger",
                     "default x {0.01, 0.1, 1}: 300 steps barely reach the default ball"),
    "frobenius_pgm": Knob("pgm_gamma", _around("frobenius_pgm", "gamma", (0.01, 0.1, 1.0)),
                          "larger", "default x {0.01, 0.1, 1}: 300 steps barely reach the "
                          "default ball"),
    "stochnorm": Knob("stochnorm_p", (0.1, methods_lib.get("stochnorm").hyper_parameters["p"],
                                      0.9), "larger", "a probability: {0.1, default, 0.9}"),
    "l2_sp_k": Knob("alpha", _around("l2_sp_k", "alpha", (1e-3, 1e-2, 1e-1)), "smaller",
                    "default x {1e-3, 1e-2, 1e-1}: where the study's penalties choose"),
    "group_lasso_sp_layer": Knob(
        "alpha", _around("group_lasso_sp_layer", "alpha", (1e-3, 1e-2, 1e-1)), "smaller",
        "default x {1e-3, 1e-2, 1e-1}: where the study's penalties choose"),
    "lp_ft": Knob("probe_l2", (methods_lib.get("lp_ft").hyper_parameters["probe_l2"], 0.01,
                               0.1), "smaller", "default 0, then 0.01, 0.1"),
    "wise_ft": Knob("wise_ft_alpha", tuple(wise_ft_lib.DEFAULT_GRID), "larger",
                    "the paper's grid 0, 0.1, ..., 1, in one run per fold", in_run=True),
}
METHODS = tuple(methods_lib.names())


def knob(method):
    """The :class:`Knob` of registry method ``method``; ValueError for another name."""
    if method not in KNOBS:
        raise ValueError(f"{method!r} has no selected hyper-parameter here; the methods are "
                         f"{sorted(KNOBS)}.")
    return KNOBS[method]


def grid(method, values=None):
    """The values tried for ``method``, each ``{flag: value}`` (driver flag names):
    :data:`KNOBS`' or the given ``values``."""
    k = knob(method)
    return [{k.flag: float(v)} for v in (k.values if values is None else values)]


def method_fields_with(method, value, beta=BETA, arm=SMALL, fisher_file=None):
    """:func:`protocol.method_fields` of ``method`` with ``value`` (``{flag: value}`` of
    :func:`grid`) set: the RunConfig options, by flag name, of that method at that value.
    The weight penalties (``--alpha``) keep ``beta`` on the new head."""
    (flag, v), = value.items()
    if flag != knob(method).flag:
        raise ValueError(f"{method}: the selected flag is --{knob(method).flag}, not --{flag}.")
    alpha = v if flag == "alpha" else 0.0
    fields = protocol.method_fields(method, alpha, beta, arm, fisher_file)
    fields[flag] = v
    return fields


def _name(method, value):
    (flag, v), = value.items()
    return f"{method}_{flag}{v:g}".replace(f"{method}_{method}_", f"{method}_")


def _cell_dir(target, root, phase):
    return os.path.join(root, target.split.name, f"n{target.examples_per_class}",
                        f"t{target.steps}", phase)


def _run(target, method, value, seed, root, data_dir, output_dir, beta=BETA, folds=0,
         fold=None):
    """A :class:`protocol.StudyRun` of ``method`` at ``value`` (None: ``none``) in
    ``output_dir``: a selection run on fold ``fold`` of ``folds`` (``--cv_folds``,
    ``--cv_fold``), or with ``folds=0`` a final run (every labelled image, tested)."""
    alpha = value.get("alpha", 0.0) if value else 0.0
    extra = {} if value is None else {
        k: v for k, v in method_fields_with(method, value, beta, target.arm,
                                            target.fisher_file).items()
        if k not in ("alpha", "beta")}
    job = protocol.target_config(target, method, alpha, seed, root, data_dir,
                                 select=bool(folds), beta=beta, folds=folds, fold=fold,
                                 fields=extra)
    return protocol.StudyRun(config_lib.replace(job.config, output_dir=output_dir),
                             job.inputs)


@dataclasses.dataclass
class SelectionRun:
    """One selection run: ``method``, the ``values`` it evaluates (one ``{flag: value}``;
    every WiSE-FT coefficient for ``wise_ft``), its ``fold`` and the ``run``."""
    method: str
    values: list
    fold: int
    run: protocol.StudyRun


def selection_configs(target, method, root, data_dir, folds=3, beta=BETA, values=None):
    """The :class:`SelectionRun` s of ``method`` on ``target`` (a :class:`protocol.Target`):
    one per value of :func:`grid` and fold ``i < folds`` (``--cv_folds=folds
    --cv_fold=i``); for ``wise_ft`` one per fold evaluating the whole grid
    (``--wise_ft_grid``). ``values``: another grid than :data:`KNOBS`'. Each config is
    validated."""
    if folds < 2:
        raise ValueError(f"folds={folds}: k-fold cross-validation needs k >= 2.")
    k, out, tried = knob(method), [], grid(method, values)
    base = _cell_dir(target, root, "methods_select")
    groups = ([(tried, tried[0])] if k.in_run else [([value], value) for value in tried])
    for covered, value in groups:
        name = f"{method}_grid" if k.in_run else _name(method, value)
        for fold in range(folds):
            job = _run(target, method, value, 0, root, data_dir,
                       os.path.join(base, name, f"fold{fold}"), beta, folds, fold)
            config = job.config
            if k.in_run:
                config = config_lib.replace(config, wise_ft_grid=[
                    v for value in tried for v in value.values()])
            config = config_lib.validate(config)
            out.append(SelectionRun(method, covered, fold, protocol.StudyRun(config,
                                                                             job.inputs)))
    return out


def value_records(selection_run, record):
    """The validation record of each value ``selection_run`` evaluated, as
    :func:`selection.pool` reads them (``flags[flag]``, accuracy, cross-entropy,
    ``num_eval``, ``eval_split``): the record itself, or for ``wise_ft`` one per
    coefficient from its ``wise_ft`` grid scores."""
    k = knob(selection_run.method)
    if not k.in_run:
        (flag, v), = selection_run.values[0].items()
        return [{**record, "flags": {**record.get("flags", {}), flag: v}}]
    wise = record.get("wise_ft")
    if not wise:
        raise ValueError(f"{record.get('output_dir')}: a wise_ft record without its grid "
                         "scores ('wise_ft').")
    split = wise.get("eval_split")  # the split the grid was scored on
    return [{"accuracy": p["accuracy"], "cross_entropy": p["cross_entropy"],
             "num_eval": record.get("num_eval"), "eval_split": split,
             "output_dir": record.get("output_dir"), "flags": {k.flag: p["alpha"]}}
            for p in wise["grid"]]


def _weaker_key(method, candidate):
    (_, v), = candidate.values
    return v if knob(method).weaker == "smaller" else -v


def choose(method, selection_runs, records):
    """``(chosen {flag: value}, candidates)`` of ``method`` from its selection runs and
    their driver records (same order): the folds pooled per value
    (:func:`selection.pool`, which refuses a record not evaluated on validation images),
    then the highest pooled accuracy, ties to the lower pooled cross-entropy, then to the
    weaker value (:class:`Knob`)."""
    if len(selection_runs) != len(records):
        raise ValueError(f"{len(selection_runs)} selection runs but {len(records)} records.")
    flag = knob(method).flag
    pooled = []
    for job, record in zip(selection_runs, records):
        selection_lib.check_validation([record])
        pooled += value_records(job, record)
    candidates = selection_lib.pool(pooled, (flag,))
    for c in candidates:
        if c.cross_entropy is None:
            raise ValueError(f"{method} {c.value}: a record without cross_entropy.")
    best = min(candidates, key=lambda c: (-c.exact_accuracy, c.cross_entropy,
                                          _weaker_key(method, c)))
    return best.value, candidates


def final_configs(target, method, value, seeds, root, data_dir, beta=BETA):
    """The final runs (seeds ``1..seeds``) of ``method`` at ``value`` (``{flag: value}``;
    None for ``none``): every labelled image, tested on the test images. WiSE-FT evaluates
    only the chosen coefficient (``--wise_ft_grid=[a]``)."""
    base, out = _cell_dir(target, root, "methods_final"), []
    for seed in range(1, seeds + 1):
        name = (REFERENCE if value is None else _name(method, value)) + f"_s{seed}"
        job = _run(target, method, value, seed, root, data_dir, os.path.join(base, name),
                   beta)
        if value is not None and knob(method).in_run:
            job.config = config_lib.replace(job.config, wise_ft_grid=list(value.values()))
        out.append(protocol.StudyRun(config_lib.validate(job.config), job.inputs))
    return out


def planned_runs(config):
    """``(selection runs, final runs)`` of the part under ``config``."""
    select = sum(config.folds * (1 if knob(m).in_run else len(_values(config, m)))
                 for m in config.methods)
    finals = config.seeds * (len(config.methods) + (REFERENCE not in config.methods))
    return select, finals


@dataclasses.dataclass
class Config:
    """Part ``methods_<split>``, sized for one split in <= 60 min on 2 cores: 3 folds x
    3 values x 12 methods + 3 WiSE-FT runs = 111 selection runs and 5 seeds x 14 methods
    (with ``none``) = 70 finals, 181 runs of 300 steps (:func:`planned_runs`). The study's
    version-1 main phase trained 222 such runs in 3606 s with 2 workers
    (``docs/cpu_study/study.json``, ``runs.csv``, ``selection.csv``): ~220 runs per hour;
    with the methods' mean step cost of ~1.07 x plain (docs/methods.md) that is ~53 min
    (~60 min at the 180 runs per hour of the brief).

    ``split``: None runs the study's splits (a part ``methods_<split>`` of
    :mod:`experiments.cpu_study.parts` restricts them to its own); ``examples_per_class``,
    ``steps``, ``test_examples_per_class``: None takes the study settings' ``main_examples``,
    ``main_steps``, ``test_examples_per_class`` (the main table's cell); ``grids``:
    ``{method: values}`` replacing :data:`KNOBS`' values (to trim the part)."""
    split: Optional[str] = None
    methods: tuple = METHODS
    examples_per_class: Optional[int] = None
    steps: Optional[int] = None
    folds: int = 3
    seeds: int = 5
    test_examples_per_class: Optional[int] = None
    grids: dict = dataclasses.field(default_factory=dict)


QUICK = dict(methods=("bss", "wise_ft"), grids={"bss": (1e-3, 1e-2)}, examples_per_class=6,
             steps=4, folds=2, seeds=2, test_examples_per_class=20)


def _values(config, method):
    return tuple(config.grids.get(method, knob(method).values))


def _setting(config, study, name, settings_name):
    value = getattr(config, name)
    return getattr(study.s, settings_name) if value is None else value


def run(study, config):
    """Selection then finals of ``config.methods`` (and ``none``) on each split
    (``config.split``, else the study's); appends rows to
    ``study.rows["methods_selection"]`` and ``study.rows["methods_runs"]``."""
    for split in ((config.split,) if config.split else tuple(study.s.splits)):
        _run_split(study, config, SPLITS[split])


def _run_split(study, config, split):
    n = _setting(config, study, "examples_per_class", "main_examples")
    steps = _setting(config, study, "steps", "main_steps")
    target = Target(split, SMALL, n, steps, study.source_weights(split.name),
                    test_examples_per_class=_setting(config, study, "test_examples_per_class",
                                                     "test_examples_per_class"))
    cell = dict(split=split.name, examples_per_class=n, steps=steps)
    jobs = {m: selection_configs(target, m, study.root, study.data_dir, config.folds,
                                 values=_values(config, m))
            for m in config.methods}
    flat = [j for m in config.methods for j in jobs[m]]
    records = study.run_all([j.run for j in flat], f"methods {split.name} selection")
    chosen, start = {}, 0
    for m in config.methods:
        mine = records[start:start + len(jobs[m])]
        start += len(jobs[m])
        chosen[m], candidates = choose(m, jobs[m], mine)
        for c in candidates:
            (flag, v), = c.values
            study.rows["methods_selection"].append(dict(
                **cell, method=m, flag=flag, value=v, folds=c.folds, num_val=c.num_eval,
                val_accuracy=c.accuracy, val_cross_entropy=c.cross_entropy,
                chosen=c.value == chosen[m]))
    finals = [(REFERENCE, None)] + [(m, chosen[m]) for m in config.methods]
    runs = [(m, v, job) for m, v in finals
            for job in final_configs(target, m, v, config.seeds, study.root, study.data_dir)]
    records = study.run_all([r[2] for r in runs], f"methods {split.name} finals")
    for (m, v, job), record in zip(runs, records):
        flag, value = next(iter(v.items())) if v else ("", math.nan)
        study.rows["methods_runs"].append(dict(
            **cell, method=m, flag=flag, value=value, seed=job.config.optim.seed,
            test_accuracy=record["accuracy"], test_cross_entropy=record.get("cross_entropy"),
            num_test=record["num_eval"], eval_split=record["eval_split"],
            train_time_s=record["train_time_s"]))
