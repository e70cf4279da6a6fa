"""Group-Lasso-SP with one group per layer.

From the TensorFlow code of the L2-SP authors (Li, Grandvalet & Davoine), github
holyseven/TransferLearningClassification, ``model/network_base.py`` at commit 1426356
(2018-07-18), ``Network._decay``, ``mode == 50`` ("Group-Lasso-SP regularization, each group
is one whole layer", lines 291-321): for each inherited kernel the squared deviation is
summed over all four axes, ``1e-16`` added, the square root taken and multiplied by
``sqrt(number of entries)``::

    Omega(w) = alpha * sum_l sqrt(p_l) * sqrt(||W_l - W0_l||_F^2 + epsilon)  +  beta/2 ||w_new||^2

``p_l`` the number of entries of kernel ``l``, ``epsilon = 1e-16`` by default (the authors'
constant). The paper's Group-Lasso-SP (``penalty.penalize(..., "group_lasso_sp")``) has one
group per output channel instead (their ``mode == 5``).

How it plugs into ``model.fit`` (a weight penalty, ``model.losses``)::

    plan = penalize_group_lasso_sp_layer(tm.model, alpha, beta, new_layers=tm.new_layers)
    tm.model.compile(...); tm.model.fit(...)

It is :func:`tftransfer.penalty.penalize` with the ``group_lasso_sp`` scheme whose
regularizers (``tftransfer.regularizers.GroupLassoSP``) sum every axis within the group
(``group_axes`` = all axes), so the starting point, ``.keras`` round trip and backends are
Group-Lasso-SP's.
"""
from typing import Sequence

import keras

from tftransfer import penalty, regularizers
from tftransfer.methods.registry import MethodSpec, register

SPEC = register(MethodSpec(
    name="group_lasso_sp_layer", kind="weight_penalty",
    paper="Li, Grandvalet & Davoine 2018, authors' TF code (holyseven/"
          "TransferLearningClassification, model/network_base.py, mode 50)",
    hyper_parameters={"alpha": 0.1, "beta": 0.01, "epsilon": regularizers.DEFAULT_EPSILON},
    formula="alpha * sum_l sqrt(p_l) * sqrt(||W_l - W0_l||_F^2 + epsilon) + beta/2 ||w_new||^2"))


def penalize_group_lasso_sp_layer(
        model: keras.Model, alpha: float, beta: float,
        new_layers: str | keras.Layer | Sequence[str | keras.Layer] = (),
        epsilon: float = regularizers.DEFAULT_EPSILON) -> penalty.PenaltyPlan:
    """Attaches Group-Lasso-SP with one group per inherited kernel (strength ``alpha``) and
    L2(``beta``) on ``new_layers``; returns the :class:`~tftransfer.penalty.PenaltyPlan`
    (``scheme="group_lasso_sp_layer"``)."""
    plan = penalty.penalize(model, "group_lasso_sp", alpha, beta, new_layers=new_layers,
                            epsilon=epsilon)
    inherited = set(plan.inherited)
    for layer in penalty.all_layers(model):
        for variable, _ in penalty.kernel_variables(layer):
            if variable.path in inherited:
                variable.regularizer.group_axes = tuple(range(len(variable.shape)))
    plan.scheme = "group_lasso_sp_layer"
    return plan
