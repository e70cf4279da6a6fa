"""The methods of :mod:`tftransfer.methods` by name: :func:`register`, :func:`get`, :func:`names`.

Each method module describes itself with one :class:`MethodSpec` and registers it when
imported (``tftransfer.methods`` imports them all), so adding a method is one module, one
``register`` call and one test. ``kind`` says where the method acts:

- ``weight_penalty``: a regularizer on the weights (``model.losses``), like L2-SP;
- ``loss``: a term computed from the model's outputs or intermediate features, added to the
  data loss (DELTA, BSS, LWF, Co-Tuning);
- ``optimizer``: a change of the update (a projection or a decay after each step);
- ``layer``: layers replaced during fine-tuning (StochNorm);
- ``procedure``: phases around training (LP-FT, WiSE-FT).
"""
import dataclasses
from typing import Dict, List

KINDS = ("weight_penalty", "loss", "optimizer", "layer", "procedure")


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A method: its ``name`` (the driver's value), ``kind`` (:data:`KINDS`), the ``paper``
    it comes from, its hyper-parameters with their defaults, and the ``formula`` in one
    line."""
    name: str
    kind: str
    paper: str
    hyper_parameters: Dict[str, float]
    formula: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind {self.kind!r} is not one of {KINDS}.")


_REGISTRY = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Adds ``spec`` (a :class:`MethodSpec`) under its name; returns it."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] != spec:
        raise ValueError(f"a method named {spec.name!r} is already registered.")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> MethodSpec:
    """The :class:`MethodSpec` called ``name``; ValueError listing the known names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; the methods are {names()}.")
    return _REGISTRY[name]


def names() -> List[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)
