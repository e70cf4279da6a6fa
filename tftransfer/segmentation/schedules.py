"""The "poly" learning rate of DeepLab and PSPNet (Li et al. 2018, Table 3):

    lr(t) = lr0 * (1 - t / T) ** power,   power = 0.9 by default, t = 0 .. T

``t`` is the optimizer's iteration count (0 at the first update); after ``T`` it stays at 0.
"""
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="tftransfer")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``lr0 * (1 - min(t, T) / T) ** power``."""

    def __init__(self, initial_learning_rate: float, decay_steps: int,
                 power: float = 0.9) -> None:
        if not decay_steps > 0:
            raise ValueError(f"decay_steps must be > 0, got {decay_steps}.")
        if not initial_learning_rate > 0 or not power > 0:
            raise ValueError("initial_learning_rate and power must be > 0, got "
                             f"{initial_learning_rate} and {power}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.power = float(power)

    def __call__(self, step: Any) -> Any:
        t = keras.ops.minimum(keras.ops.cast(step, "float32"), float(self.decay_steps))
        remaining = (self.decay_steps - t) / self.decay_steps  # 1 - t/T without cancellation
        return self.initial_learning_rate * remaining ** self.power

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "power": self.power}
