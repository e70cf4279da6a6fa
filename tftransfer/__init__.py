"""tftransfer: fine-tuning with an explicit inductive bias toward the starting point.

Three lines to add L2-SP to a Keras model whose weights are the pretrained ones::

    import tftransfer
    tftransfer.penalize(model, "l2_sp", alpha=0.1, beta=0.01, new_layers=["predictions"])
    model.fit(...)   # minimises cross-entropy + sum(model.losses)
"""
from tftransfer import regularizers
from tftransfer.fused_penalty import fused_optimizer
from tftransfer.penalty import SCHEMES, PenaltyPlan, StartingPoint, penalize, starting_point

__all__ = ["SCHEMES", "PenaltyPlan", "fused_optimizer", "StartingPoint", "penalize", "regularizers",
           "starting_point"]
__version__ = "0.1.0"
