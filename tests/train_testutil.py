"""Shared helpers of the driver tests: a tiny synthetic configuration and process runner."""
import os
import subprocess
import sys

from tftransfer.training import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A few dozen steps of a 2-stage, 4/8-channel small ResNet on 16x16 synthetic images.
TINY = dict(dataset="synthetic", arch="small_resnet", model_widths=[4, 8], resize=20,
            crop_size=16, batch_size=8, train_steps=30, lr_boundaries=[20],
            learning_rate=0.05, checkpoint_every=10, log_every=1, eval_batch_size=32,
            verbose=0)


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
