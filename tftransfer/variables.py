"""Variables by path: the one selector, the one frozen snapshot ``W0`` and the deviation.

:class:`StartingPoint` holds frozen copies ``W0`` of chosen variables (and optionally their
Fisher weights ``F``). The penalty binds its regularizers to it (Li, Grandvalet & Davoine
2018, "Explicit Inductive Bias for Transfer Learning with Convolutional Networks",
Section 3: the starting point ``w0`` of L2-SP), the driver logs the deviation from it and
the analyses measure it; a model carries one, reused by all three where it covers their
variables.

:func:`deviation` is the per-layer distance of Li et al. 2018, Figure 2::

    d(W) = ||W - W0||_F / sqrt(n)      (n: number of entries of W)
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import keras
import numpy as np
from keras import ops


def select_variables(model: keras.Model, paths: Optional[Sequence[str]] = None,
                     kernels_only: bool = False) -> List[keras.Variable]:
    """``model``'s trainable variables named in ``paths`` (default: all of them, or every
    ``.../kernel`` with ``kernels_only``), in the model's order of ``paths``.

    Raises:
      ValueError: naming the paths the model does not have, with the ones it has.
    """
    variables = list(model.trainable_variables)
    if paths is None:
        return [v for v in variables if v.path.endswith("kernel")] if kernels_only else variables
    by_path = {v.path: v for v in variables}
    unknown = [p for p in paths if p not in by_path]
    if unknown:
        raise ValueError(f"unknown variable paths {unknown}; trainable paths of the model: "
                         f"{sorted(by_path)}.")
    return [by_path[p] for p in paths]


def _safe_name(path):
    return path.replace("/", "__").replace(":", "_")


def _checkpointable_base():
    """``tf.Module`` on the TensorFlow backend (so that ``tf.train.Checkpoint`` tracks the
    copies), a plain object on the others."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return tf.Module
    return object


class StartingPoint(_checkpointable_base()):
    """Frozen copies ``W0`` (``references``) and Fisher weights ``F`` (``fisher``), by path:
    non-trainable ``keras.Variable`` s, so the same object works on every Keras backend.

    On TensorFlow it is a ``tf.Module``: attached to a model, a ``tf.train.Checkpoint`` of
    the model saves and restores it, while ``model.variables`` (and so ``model.export``)
    does not include it. In ``.keras`` files the copies travel with the penalties'
    regularizers (:mod:`tftransfer.regularizers`), not with this object.
    """

    def __init__(self, variables: Sequence[keras.Variable],
                 fisher: Optional[Mapping[str, Any]] = None, name: str = "starting_point") -> None:
        if _checkpointable_base() is object:
            self._name = name
        else:
            super().__init__(name=name)
        paths = [v.path for v in variables]
        if len(set(paths)) != len(paths):
            raise ValueError("Two variables share a path; give the model's layers unique "
                             "names.")
        self.references = {v.path: keras.Variable(ops.copy(ops.convert_to_tensor(v)),
                                                  dtype=v.dtype, trainable=False,
                                                  name=_safe_name(v.path))
                           for v in variables}
        self.fisher = {path: keras.Variable(np.asarray(value, np.float32), dtype="float32", trainable=False,
                                            name=_safe_name(path) + "_fisher")
                       for path, value in (fisher or {}).items()}

    @classmethod
    def of(cls, references: Mapping[str, keras.Variable],
           fisher: Optional[Mapping[str, keras.Variable]] = None,
           name: str = "starting_point") -> "StartingPoint":
        """A starting point around existing variables ``{path: keras.Variable}`` (shared,
        not copied): how a model reloaded from a ``.keras`` file gets its own back."""
        start = cls([], name=name)
        start.references = dict(references)
        start.fisher = dict(fisher or {})
        return start

    @property
    def name(self) -> str:
        return self._name

    def covers(self, variables: Sequence[keras.Variable]) -> bool:
        """Whether every variable of ``variables`` has its ``W0`` here."""
        return all(v.path in self.references for v in variables)


def deviation(variables: Sequence[keras.Variable],
              reference: Union["StartingPoint", Mapping[str, Any]]) -> Dict[str, float]:
    """``{path: ||W - W0||_F / sqrt(n)}``; ``reference`` maps each path to ``W0`` (an array,
    a variable, or a :class:`StartingPoint`). Computed in float64."""
    if isinstance(reference, StartingPoint):
        reference = reference.references
    out = {}
    for v in variables:
        diff = (np.asarray(ops.convert_to_numpy(v), np.float64)
                - np.asarray(ops.convert_to_numpy(reference[v.path]), np.float64))
        out[v.path] = float(np.sqrt(np.sum(diff * diff) / diff.size))
    return out
