"""tftransfer: fine-tuning with an explicit inductive bias toward the starting point.

L2-SP (Li, Grandvalet & Davoine 2018) on a Keras model whose current weights are the
pretrained ones, with a new classifier named ``"predictions"``::

    import tftransfer
    plan = tftransfer.penalize(model, "l2_sp", alpha=0.01, beta=0.01,
                               new_layers=["predictions"])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(...)   # minimises cross-entropy + sum(model.losses)

The complete, runnable example is the README's quickstart.

``import tftransfer`` is light: it imports neither Keras nor TensorFlow. Every name below
is imported on first use (PEP 562), the core ones (:func:`penalize`, :mod:`regularizers`
...) with Keras, the subpackages with their own dependencies (``tftransfer.analysis`` needs
the ``[analysis]`` extra, ``tftransfer.data``'s builders the ``[datasets]`` extra,
``tftransfer.training`` the ``[driver]`` extra).

Core: :func:`penalize`, :data:`SCHEMES`, :class:`PenaltyPlan`, :func:`starting_point`,
:class:`StartingPoint`, :func:`fused_optimizer`, :mod:`regularizers`.
Subpackages and modules: :mod:`models`, :mod:`weights`, :mod:`methods`, :mod:`fisher`,
:mod:`segmentation`, :mod:`data`, :mod:`analysis`, :mod:`training`, :mod:`penalty`,
:mod:`fused_penalty`, :mod:`variables`, :mod:`batching`, :mod:`optimizer_wrappers`,
:mod:`io_utils`.
"""
import importlib
from typing import TYPE_CHECKING, Any, List

__version__ = "0.1.0"

# Name -> module that defines it (imported on first access).
_CORE = {
    "SCHEMES": "tftransfer.penalty",
    "PenaltyPlan": "tftransfer.penalty",
    "penalize": "tftransfer.penalty",
    "starting_point": "tftransfer.penalty",
    "StartingPoint": "tftransfer.variables",
    "fused_optimizer": "tftransfer.fused_penalty",
}
# Subpackages and modules reachable as attributes (``tftransfer.models.build(...)``).
SUBMODULES = ("analysis", "batching", "data", "fisher", "fused_penalty", "io_utils",
              "methods", "models", "optimizer_wrappers", "penalty", "regularizers",
              "segmentation", "training", "variables", "weights")

__all__ = sorted(list(_CORE) + list(SUBMODULES))
# The extra of setup.py that a subpackage needs beyond the core (TensorFlow, Keras, NumPy).
_EXTRAS = {"analysis": "analysis", "data": "datasets", "training": "driver"}

# What static type checkers see of the core names (nothing is imported at runtime). The
# subpackages are left to ``__getattr__`` (typed Any): importing them here, even for type
# checking only, would break the layering contracts of pyproject.toml (lint-imports).
if TYPE_CHECKING:
    from tftransfer.fused_penalty import fused_optimizer  # noqa: F401
    from tftransfer.penalty import SCHEMES, PenaltyPlan, penalize, starting_point  # noqa
    from tftransfer.variables import StartingPoint  # noqa: F401


def __getattr__(name: str) -> Any:
    """Imports ``tftransfer.<name>`` or the module defining ``name`` on first access."""
    if name in _CORE:
        value = getattr(importlib.import_module(_CORE[name]), name)
    elif name in SUBMODULES:
        try:
            value = importlib.import_module(f"tftransfer.{name}")
        except ModuleNotFoundError as error:
            if (error.name or "").startswith("tftransfer") or name not in _EXTRAS:
                raise
            raise ModuleNotFoundError(
                f"tftransfer.{name} needs {error.name!r}, which is not installed: install "
                f"the extra with `pip install tftransfer[{_EXTRAS[name]}]`.",
                name=error.name) from error
    else:
        raise AttributeError(f"module 'tftransfer' has no attribute {name!r}; its public "
                             f"names are {__all__}.")
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> List[str]:
    """The public names (imported or not yet) and the module's dunder attributes."""
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__")})
