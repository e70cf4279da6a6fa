"""Fault tolerance: what a checkpoint holds and how a run resumes.

A checkpoint (``tf.train.Checkpoint``, directory ``<output_dir>/checkpoints``) holds the
model's variables, the optimizer's (momentum and its iteration count, which is the global
step and drives the learning-rate schedule), the frozen starting point of the -SP penalties
and the reference weights of the deviation scalars. The input position is not stored as an
iterator state (a shuffle buffer of full-size images would make every checkpoint hundreds
of MB); its documented equivalent is the step: the training stream is a stateless
function of ``--seed`` (:mod:`tftransfer.data.stream`), so the resumed run builds it at
batch ``step`` without reading the consumed ones (``InputData.train_at``; the segmentation
builders' stream replays them with ``Dataset.skip``), and sees the same batches as an
uninterrupted run.

Damage: the two newest checkpoints are kept; :meth:`Checkpointer.restore` tries them newest
first and falls back to the newest intact one with a warning naming the damaged one. An
unreadable state file (``checkpoints/checkpoint``) is an error, never a silent restart from
step 0; without a state file the ``ckpt-N`` files on disk are used. The run's identity
(:mod:`tftransfer.training.identity`) is written beside the checkpoints at the first save.

Under ``multi_worker`` every task saves (saving may use collectives), the chief into the
output directory and the others into a scratch directory removed at the end.
"""
import glob
import os
import re
import shutil

from absl import logging
import tensorflow as tf

from tftransfer.io_utils import atomic_write_json
from tftransfer.training import config as config_lib
from tftransfer.training import identity as identity_lib
from tftransfer.training import strategy as strategy_lib

STATE_FILE = "checkpoint"


class CheckpointError(config_lib.ConfigError):
    """The checkpoints of a run cannot be read; the message says what to delete."""


def _on_disk(directory):
    """Checkpoint prefixes ``ckpt-N`` found in ``directory``, newest (largest N) first."""
    found = []
    for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[:-len(".index")]))
    return [prefix for _, prefix in sorted(found, reverse=True)]


def candidates(directory):
    """The checkpoints to restore from, newest first (module docstring)."""
    state_path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(state_path):
        return _on_disk(directory)
    state = tf.train.get_checkpoint_state(directory)
    if state is None or not state.model_checkpoint_path:
        found = ", ".join(os.path.basename(p) for p in _on_disk(directory)) or "none"
        raise CheckpointError(
            f"{state_path} is unreadable (not a TensorFlow checkpoint state); checkpoints "
            f"on disk: {found}. Delete that file to resume from the newest intact one of "
            f"them, or delete {directory} to start over.")
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [os.path.join(directory, p) if not os.path.isabs(p) else p
            for p in reversed(paths)]


class Checkpointer:
    """``restore() -> step`` and ``save()`` for a compiled model (module docstring)."""

    def __init__(self, output_dir, model, extra, identity=None, max_to_keep=2):
        self.chief = strategy_lib.is_chief()
        self.output_dir = output_dir
        self.chief_directory = os.path.join(output_dir, "checkpoints")
        self.directory = self.chief_directory if self.chief else os.path.join(
            output_dir, "scratch", strategy_lib.task_id())
        self.identity = identity
        self.step = model.optimizer.iterations
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, **extra)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep)

    def restore(self):
        """Restores the chief's newest intact checkpoint (every task reads the same one);
        returns its step, 0 when there is none."""
        tried = candidates(self.chief_directory)
        for prefix in tried:
            try:
                self.checkpoint.restore(prefix).assert_existing_objects_matched()
            except Exception as error:  # pylint: disable=broad-except
                logging.warning("checkpoint %s is damaged (%s: %s); trying an older one",
                                prefix, type(error).__name__, str(error).splitlines()[0]
                                if str(error) else "")
                continue
            return int(self.step.numpy())
        if tried:
            raise CheckpointError(
                f"every checkpoint in {self.chief_directory} is damaged "
                f"({', '.join(os.path.basename(p) for p in tried)}); delete "
                f"{self.chief_directory} to start the run over.")
        return 0

    def save(self):
        """Saves at the current step (and the run's identity at the first save); returns
        the path."""
        if self.chief and self.identity is not None and not os.path.exists(
                identity_lib.path(self.output_dir)):
            atomic_write_json(identity_lib.path(self.output_dir), self.identity)
        return self.manager.save(checkpoint_number=int(self.step.numpy()))

    def cleanup(self):
        """Removes a non-chief task's scratch directory."""
        if not self.chief:
            shutil.rmtree(self.directory, ignore_errors=True)
