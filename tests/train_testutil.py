"""Shared helpers of the driver tests: a tiny synthetic configuration, the process runner and
the kill-and-resume check."""
import os
import signal
import subprocess
import sys

import tensorflow as tf

from tftransfer.training import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A few dozen steps of a 2-stage, 4/8-channel small ResNet on 16x16 synthetic images; no
# summary.csv (many tests' output directories lie directly in the temporary directory).
TINY = dict(dataset="synthetic", arch="small_resnet", model_widths=[4, 8], resize=20,
            crop_size=16, batch_size=8, train_steps=30, lr_boundaries=[20],
            learning_rate=0.05, checkpoint_every=10, log_every=1, eval_batch_size=32,
            verbose=0, summary_csv="")


def tiny_config(output_dir, **overrides):
    return config_lib.make(**dict(TINY, output_dir=output_dir, **overrides))


def tiny_flags(output_dir, **overrides):
    """Command-line flags of ``tiny_config(output_dir, **overrides)``."""
    values = dict(TINY, output_dir=output_dir, **overrides)
    out = []
    for name, value in values.items():
        if isinstance(value, bool):
            out.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, list):
            out.append(f"--{name}={','.join(str(v) for v in value)}")
        else:
            out.append(f"--{name}={value}")
    return out


def driver_command(*flags):
    return [sys.executable, "-m", "tftransfer.train", *flags]


def environment(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_driver(*flags, timeout=300, **env):
    return subprocess.run(driver_command(*flags), capture_output=True, text=True, cwd=ROOT,
                          env=environment(**env), timeout=timeout)


def checkpoint_values(output_dir):
    """``{key: array}`` of the latest checkpoint of a run directory (counters left out)."""
    reader = tf.train.load_checkpoint(os.path.join(output_dir, "checkpoints"))
    keys = [k for k in reader.get_variable_to_shape_map()
            if not k.startswith(("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"))]
    return {k: reader.get_tensor(k) for k in keys}


def kill_and_resume(test, make_flags, root, kill_after_step, steps):
    """Starts two driver processes at once with ``make_flags(output_dir)``, the uninterrupted
    run in ``root/whole`` and one in ``root/killed``, SIGKILLs the latter once it logs its
    checkpoint of step ``kill_after_step``, resumes it to the end, and asserts the kill, the
    resume and that the final checkpoints hold the same keys with bitwise equal values.
    Returns ``(killed_at, resumed process, final checkpoint values)``."""
    whole_dir, killed_dir = os.path.join(root, "whole"), os.path.join(root, "killed")

    def start(output_dir):
        return subprocess.Popen(driver_command(*make_flags(output_dir)), cwd=ROOT,
                                env=environment(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    uninterrupted, victim = start(whole_dir), start(killed_dir)
    seen = []
    for line in victim.stdout:
        seen.append(line)
        if f"checkpoint: saved step {kill_after_step}" in line:
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=60)
    test.assertEqual(victim.returncode, -signal.SIGKILL, "".join(seen)[-3000:])
    test.assertFalse(os.path.exists(os.path.join(killed_dir, "results.json")))
    latest = tf.train.latest_checkpoint(os.path.join(killed_dir, "checkpoints"))
    killed_at = int(latest.rsplit("-", 1)[1])
    test.assertBetween(killed_at, kill_after_step, steps - kill_after_step)

    resumed = run_driver(*make_flags(killed_dir))
    test.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
    test.assertIn(f"resumed from step {killed_at}", resumed.stderr)
    output, _ = uninterrupted.communicate(timeout=300)
    test.assertEqual(uninterrupted.returncode, 0, output[-3000:])
    whole_values, resumed_values = checkpoint_values(whole_dir), checkpoint_values(killed_dir)
    test.assertEqual(sorted(whole_values), sorted(resumed_values))
    for key, value in whole_values.items():
        test.assertAllEqual(value, resumed_values[key], msg=key)
    return killed_at, resumed, whole_values
