"""Fault tolerance: what a checkpoint holds and how a run resumes.

A checkpoint (``tf.train.Checkpoint``, directory ``<output_dir>/checkpoints``) holds the
model's variables, the optimizer's (momentum and its iteration count, which is the global
step and drives the learning-rate schedule), the frozen starting point of the -SP penalties
and the reference weights of the deviation scalars. The input position is not stored as an
iterator state (a shuffle buffer of full-size images would make every checkpoint hundreds
of MB); its documented equivalent is the step: the training stream is a deterministic
function of ``--seed``, so the resumed run rebuilds it and skips the ``step`` batches
already consumed (``Dataset.skip``), and sees the same batches as an uninterrupted run.

Under ``multi_worker`` every task saves (saving may use collectives), the chief into the
output directory and the others into a scratch directory removed at the end.
"""
import os
import shutil

import tensorflow as tf

from tftransfer.training import strategy as strategy_lib


class Checkpointer:
    """``restore() -> step`` and ``save()`` for a compiled model (module docstring)."""

    def __init__(self, output_dir, model, extra, max_to_keep=2):
        self.chief = strategy_lib.is_chief()
        self.chief_directory = os.path.join(output_dir, "checkpoints")
        self.directory = self.chief_directory if self.chief else os.path.join(
            output_dir, "scratch", strategy_lib.task_id())
        self.step = model.optimizer.iterations
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, **extra)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep)

    def restore(self):
        """Restores the chief's latest checkpoint (every task reads the same one); returns
        its step, 0 when there is none."""
        latest = tf.train.latest_checkpoint(self.chief_directory)
        if latest is None:
            return 0
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self):
        """Saves at the current step; returns the path."""
        return self.manager.save(checkpoint_number=int(self.step.numpy()))

    def cleanup(self):
        """Removes a non-chief task's scratch directory."""
        if not self.chief:
            shutil.rmtree(self.directory, ignore_errors=True)
