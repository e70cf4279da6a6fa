"""One run of the driver, start to finish: :func:`run`.

1. validate the configuration and the files it names (nothing happens on invalid flags),
   claim and lock the output directory (default: one per run identity), check that what it
   holds belongs to these flags (:mod:`tftransfer.training.identity`); return the record at
   once when ``results.json`` exists (a finished run is never retrained);
2. seeds (``keras.utils.set_random_seed(--seed)``), op determinism if asked, strategy;
3. inputs (through the hook ``inputs``, a :class:`tftransfer.training.data.Inputs`: the
   driver's own datasets by default), then the compiled model
   (:mod:`tftransfer.training.model`);
4. restore the latest checkpoint if any (the resumed run finishes the same schedule);
5. ``model.fit`` on the training stream for the remaining steps, from the restored step
   on (:meth:`tftransfer.training.data.InputData.train_at`: the stateless streams start
   there directly, without reading the consumed batches), with periodic checkpoints
   and progress (:mod:`tftransfer.training.callbacks`): penalties are ``model.losses``, the
   step is the optimizer's iteration count (``multi_worker`` only: the equivalent loop of
   :mod:`tftransfer.training.loop`, for a Keras bug);
6. evaluation with 1 or 10 crops, source-task accuracy with the source head put back
   (Table 5), SavedModel export reloaded and compared, ``results.json`` (with the
   accuracy and mean cross-entropy on the evaluated split, and the timings of
   :mod:`tftransfer.training.timing`: the process, setup, data, model, train, eval and
   export), and its row in the runs folder's ``summary.csv``
   (:mod:`tftransfer.training.summary`). ``--task=segmentation`` goes through the same
   steps with the model, inputs and loss of the task
   (:mod:`tftransfer.training.segmentation_model`,
   :mod:`~tftransfer.training.segmentation_data`) and its evaluation
   (:mod:`~tftransfer.training.segmentation_eval`: mIoU, per-class IoU and pixel accuracy
   in ``results.json``, ``confusion_matrix.csv``); the exported network maps images to
   per-pixel logits.

``--method`` (:mod:`tftransfer.training.methods`) changes what step 3 builds (the penalty,
a loss wrapper, the optimizer, StochNorm layers; built fresh, never from ``cache``), adds
its state to the checkpoint of step 4, and for ``lp_ft``/``wise_ft`` the linear probe
between steps 4 and 5 (a checkpoint at step 0 after it) and, for ``wise_ft``, the
interpolation grid before step 6's evaluation; the loop of step 5 is the same.

A non-finite loss stops training (:class:`tftransfer.training.callbacks.Diverged`): the last
good checkpoint is kept, ``failed.json`` records the attempt, a restart retries it.
"""
import json
import os
import time

import keras
import tensorflow as tf
from absl import logging

from tftransfer.data.evaluation import crop_accuracy
from tftransfer.io_utils import atomic_path, atomic_write_json
from tftransfer.training import callbacks as callbacks_lib
from tftransfer.training import config as config_lib
from tftransfer.training import data as data_lib
from tftransfer.training import data_location
from tftransfer.training import export as export_lib
from tftransfer.training import identity as identity_lib
from tftransfer.training import methods as methods_glue
from tftransfer.training import preflight
from tftransfer.training import results as results_lib
from tftransfer.training import run_directory
from tftransfer.training import segmentation_eval
from tftransfer.training import strategy as strategy_lib
from tftransfer.training import summary as summary_lib
from tftransfer.training import timing
from tftransfer.training.evaluate import accuracy_and_cross_entropy
from tftransfer.training.checkpoint import Checkpointer, candidates
from tftransfer.training.loop import fit
from tftransfer.training.model import build_compiled, learning_rate_schedule, seed_states
from tftransfer.variables import StartingPoint, select_variables



def deviation_variables(config, compiled):
    """``--deviation_layers`` or the first, middle and last inherited kernel (all kernels
    when nothing is inherited)."""
    model = compiled.target
    if config.runtime.deviation_layers:
        return select_variables(model, config.runtime.deviation_layers)
    new = set(compiled.transfer.new_layers)
    kernels = [v for v in select_variables(model, kernels_only=True)
               if v.path.split("/")[0] not in new or len(new) > 1]
    if not kernels:
        return []
    picked = [kernels[0], kernels[len(kernels) // 2], kernels[-1]]
    return list({v.path: v for v in picked}.values())


def _check_unfinished_run(config, inputs):
    """Stops when the checkpoints in the output directory belong to other flags, or to no
    known flags."""
    output_dir = config.runtime.output_dir
    stored = identity_lib.load(output_dir)
    if stored is not None:
        identity_lib.check(config, stored, "an unfinished run", identity_lib.path(output_dir),
                           inputs)
    elif candidates(os.path.join(output_dir, "checkpoints")):
        raise identity_lib.RunMismatchError(
            f"{output_dir}/checkpoints holds checkpoints without {identity_lib.FILENAME}, so "
            f"they cannot be matched to these flags. Delete {output_dir} to start over, or "
            "use another --output_dir.")


def _source_accuracy_before(config, inputs, compiled, source_test):
    """Accuracy of the starting point on the source task, computed once and stored with
    the run's identity digest (a resumed run reads it back: its weights have moved)."""
    stored = os.path.join(config.runtime.output_dir, "source_eval_before.json")
    digest = identity_lib.digest(config, inputs)
    if os.path.exists(stored):
        with open(stored) as f:
            record = json.load(f)
        if record.get("identity") == digest:
            return record["accuracy"]
    accuracy = crop_accuracy(compiled.transfer.source_model(), source_test)
    if strategy_lib.is_chief():
        atomic_write_json(stored, {"accuracy": accuracy, "identity": digest})
    return accuracy


def _first_batch(test):
    images, _ = next(iter(test))
    return images[:, 0] if images.shape.rank == 5 else images


def _export_batch(model, test):
    """The first test images, cut or zero-padded (bottom, right) to the model's input size
    when it is fixed and differs (a segmentation network trained on crops)."""
    images = _first_batch(test)
    wanted = model.input_shape[1:3]
    if images.shape.rank != 4 or None in wanted or tuple(images.shape[1:3]) == wanted:
        return images
    images = images[:, :wanted[0], :wanted[1]]
    return tf.pad(images, [[0, 0], [0, wanted[0] - images.shape[1]],
                           [0, wanted[1] - images.shape[2]], [0, 0]])


def _evaluate_segmentation(config, model, test, data, chief, say):
    """The ``results.json`` fields of a segmentation evaluation (mIoU, per-class IoU, pixel
    accuracy, cross-entropy; :mod:`tftransfer.training.segmentation_eval`), and
    ``confusion_matrix.csv`` beside it."""
    confusion, cross_entropy, _ = segmentation_eval.evaluate(
        segmentation_eval.predictor(config, model), test, data.num_classes)
    names = data.class_names or [str(k) for k in range(data.num_classes)]
    scores = segmentation_eval.fields(confusion, cross_entropy, names)
    if chief:
        segmentation_eval.write_confusion_csv(
            os.path.join(config.runtime.output_dir, segmentation_eval.CSV_NAME), confusion,
            names)
    t = config.task
    say(f"{data.eval_split} mIoU ({t.seg_eval}): {scores['mean_iou']:.4f}, pixel accuracy "
        f"{scores['pixel_accuracy']:.4f}, cross-entropy {cross_entropy:.4f}")
    return {**scores, "seg_eval": t.seg_eval, "eval_crop": t.window(config),
            "eval_stride": t.stride(config),
            "eval_scales": t.scales() if t.seg_eval == "multi_scale" else None,
            "confusion_matrix_file": segmentation_eval.CSV_NAME}


def run(config, strategy=None, cache=None, inputs=None):
    """Runs ``config`` (a :class:`RunConfig`) to the end; returns the results record
    (``None`` on non-chief tasks, which write none). ``cache``: an optional
    :class:`tftransfer.training.model.ModelCache` reused across the runs of a process.
    ``inputs``: the hook the data come from, a :class:`tftransfer.training.data.Inputs`
    (default: the driver's own, from the flags); its identity is part of the run's."""
    phases = timing.Phases()
    config = config_lib.validate(config)
    inputs = inputs or data_lib.DRIVER_INPUTS
    config = config_lib.dataset_defaults(config, inputs.input_shape(config)[-1])
    if config.runtime.output_dir is None:
        config = config_lib.replace(
            config, output_dir=identity_lib.default_output_dir(config, inputs))
    preflight.check(config, inputs)
    chief = strategy_lib.is_chief()
    with run_directory.claim(config.runtime.output_dir, exclusive=chief):
        summary_lib.check(config)  # its default lies beside the output directory
        return _run_claimed(config, inputs, strategy, cache, chief, phases)


def _run_claimed(config, inputs, strategy, cache, chief, phases):
    """:func:`run` once the output directory is held."""
    output_dir = config.runtime.output_dir
    finished = results_lib.load(output_dir)
    if finished is not None:
        identity_lib.check(config, finished.get("flags", {}), "a finished run",
                           results_lib.path(output_dir), inputs)
        score = ("mIoU", "mean_iou") if "mean_iou" in finished else ("accuracy", "accuracy")
        logging.info(f"already finished: {results_lib.path(output_dir)} ({score[0]} "
                     f"{finished[score[1]]:.4f}); delete it to train again")
        return finished
    _check_unfinished_run(config, inputs)
    failure = results_lib.load_failure(output_dir)
    if failure is not None:
        logging.info(f"a previous attempt failed at step {failure.get('failed_at_step')} "
                     f"({failure.get('reason')}); retrying from the last good checkpoint")
    started = time.time()
    m, o, e, r = config.model, config.optim, config.evaluation, config.runtime
    segmentation = config.task.task == "segmentation"
    say = logging.info if r.verbose and chief else (lambda message: None)
    if o.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(o.seed)
    strategy = strategy or strategy_lib.make_strategy(config)
    replicas = strategy.num_replicas_in_sync
    if o.batch_size % replicas:
        raise config_lib.ConfigError(f"--batch_size={o.batch_size} is the global batch; "
                                     f"it must be divisible by the {replicas} replicas.")
    with phases("data"):
        data = inputs.load(config)
    method = methods_glue.selected(config)
    with phases("model"):
        if method != config_lib.NO_METHOD:  # built fresh: tftransfer.training.methods
            compiled = methods_glue.build_compiled(config, strategy, data)
        else:
            compiled = (cache.get if cache is not None else build_compiled)(
                config, strategy, data.num_classes, data.input_shape)
    model, mode = compiled.model, compiled.transfer.preprocessing
    test = data_lib.network_inputs(data.test, mode, data.mean)
    p = config.penalty
    head = f"{config.task.seg_head} head on " if segmentation else ""
    with_method = "" if method == config_lib.NO_METHOD else f"--method={method} with "
    say(f"{head}{m.arch} from {m.source} on {config.data.dataset} ({data.num_train} training "
        f"images, {data.num_classes} classes), {with_method}{p.scheme} alpha={p.alpha:g} "
        f"beta={p.beta:g}, {replicas} replica(s), global batch {o.batch_size}")

    watched = deviation_variables(config, compiled)
    start = compiled.plan.starting_point
    if start is not None and start.covers(watched):
        reference = start  # the penalty's W0 serves the deviation log too
    else:
        with strategy.scope():
            reference = StartingPoint(watched, name="deviation_reference")
    extra = {"deviation_reference": reference}
    if start is not None:
        extra["starting_point"] = start
    if segmentation and seed_states(model):  # the heads' dropout: a resumed run draws alike
        extra["seed_states"] = seed_states(model)
    method_state = compiled.method_state
    if method_state is not None:  # W0 of an optimizer method, StochNorm's draws, LP-FT's phase
        extra.update(method_state.checkpoint_extra())
    checkpointer = Checkpointer(output_dir, model, extra,
                                identity=identity_lib.of(config, inputs))
    start_step = checkpointer.restore()
    if start_step:
        say(f"resumed from step {start_step} ({checkpointer.chief_directory})")

    source_test = source_before = None
    if e.source_eval_dataset:
        source_test = data_lib.source_eval_data(config, mode,
                                                compiled.transfer.source_head.units, inputs)
        source_before = _source_accuracy_before(config, inputs, compiled, source_test)

    probe = None
    if method in config_lib.MethodConfig.PROBED:  # LP-FT's phase 1, before fine-tuning
        with phases("probe"):
            probe, probed_now = methods_glue.probe_phase(
                config, compiled, data, identity_lib.digest(config, inputs), say)
        if probed_now:
            checkpointer.save()  # step 0 with the probed head: a restart does not probe again

    remaining = o.train_steps - start_step
    logs = (config, start_step, watched, reference, os.path.join(output_dir, "train_log.csv"),
            os.path.join(output_dir, "tensorboard"))
    if r.log_every:
        hooks = [callbacks_lib.Progress(*logs, write=chief, verbose=r.verbose > 0 and chief)]
    else:  # one row at the end, no per-batch hook (the steps stay asynchronous)
        hooks = [callbacks_lib.FinalProgress(*logs, write=chief, verbose=False,
                                             learning_rate=learning_rate_schedule(config))]
    if r.checkpoint_every:
        hooks.append(callbacks_lib.PeriodicCheckpoint(checkpointer, r.checkpoint_every,
                                                      start_step, r.verbose > 0))
    else:
        hooks.append(callbacks_lib.FinalCheckpoint(checkpointer, None, r.verbose > 0))
    setup = time.time() - phases.started - sum(phases.seconds.values())
    train_started = time.time()
    if remaining > 0:
        try:
            train = data_lib.network_inputs(data.train_at(start_step), mode, data.mean)
            fit(model, train, remaining, hooks,
                progress_bar=r.verbose == 2)
        except callbacks_lib.Diverged as error:
            if chief:
                results_lib.write_failure(output_dir, identity_lib.record_flags(config, inputs),
                                          error.step, error.reason)
            raise
    train_time = time.time() - train_started
    phases.seconds["train"] = train_time

    evaluated = compiled.evaluated
    wise = None
    if method == "wise_ft":  # after fine-tuning: the interpolation grid, then --wise_ft_alpha
        with phases("eval"):
            wise = methods_glue.wise_ft_phase(config, compiled, test, data.eval_split, say)
    with phases("eval"):
        if segmentation:
            scores = _evaluate_segmentation(config, evaluated, test, data, chief, say)
        else:
            accuracy, cross_entropy = accuracy_and_cross_entropy(evaluated, test)
            say(f"{data.eval_split} accuracy ({e.eval_crops} crop(s)): {accuracy:.4f}, "
                f"cross-entropy {cross_entropy:.4f}")
            scores = {"accuracy": accuracy, "cross_entropy": cross_entropy,
                      "eval_crops": e.eval_crops}
    fields = {**scores, "eval_split": data.eval_split, "num_eval": data.num_test,
              "num_train": data.num_train, "num_classes": data.num_classes,
              "steps": int(model.optimizer.iterations.numpy()),
              "resumed_from_step": start_step, "replicas": replicas,
              "optimizer": type(model.optimizer).__name__,
              "dtype_policy": model.dtype_policy.name,
              "train_time_s": train_time,
              "images_per_s": remaining * o.batch_size / max(train_time, 1e-9),
              "frozen_units": compiled.frozen_units, **methods_glue.record(config),
              "data_path": data.data_path or data_location.data_path(config)}
    if probe is not None or method in config_lib.MethodConfig.PROBED:
        fields["linear_probe"] = probe
    if wise is not None:
        fields["wise_ft"] = wise
    if source_test is not None:
        with phases("eval"):
            after = crop_accuracy(compiled.transfer.source_model(), source_test)
        fields.update(source_accuracy_before=source_before, source_accuracy_after=after,
                      source_drop=100.0 * (source_before - after))
        say(f"source task: {source_before:.4f} before, {after:.4f} after fine-tuning")
    if r.export:
        with phases("export"):
            diff = export_lib.export_and_check(evaluated, os.path.join(output_dir,
                                                                       "saved_model"),
                                               _export_batch(evaluated, test), chief)
        say(f"exported {output_dir}/saved_model; reloaded, max |logit difference| "
            f"{diff:.3g}")
        fields["export_max_abs_diff"] = diff
    if r.save_weights and chief:
        with phases("export"), atomic_path(os.path.join(output_dir,
                                                        "model.weights.h5")) as tmp:
            os.remove(tmp)
            evaluated.save_weights(tmp + ".weights.h5")
            os.replace(tmp + ".weights.h5", tmp)
    checkpointer.cleanup()
    if not chief:
        return None
    fields["wall_time_s"] = time.time() - started
    phases.seconds["setup"] = setup
    fields["timings"] = phases.as_dict()
    fields["without_effect"] = sorted(config_lib.without_effect(config))
    record = results_lib.write(output_dir, identity_lib.record_flags(config, inputs), **fields)
    results_lib.clear_failure(output_dir)
    table = summary_lib.append_run(config, inputs, record)
    say(f"results: {results_lib.path(output_dir)} ({record['wall_time_s']:.0f} s)"
        + (f", a row of {table}" if table else ""))
    return record
