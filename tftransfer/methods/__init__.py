"""Fine-tuning methods beyond the penalties of :mod:`tftransfer.penalty`, one module each
with its formula and paper (issue 19); :mod:`.registry` lists them by name.

- ``loss`` (:mod:`.loss_terms`: a model whose ``compute_loss`` adds the terms): :mod:`.delta`
  (``delta_fm``, ``delta``), :mod:`.bss`, :mod:`.lwf`, :mod:`.co_tuning`;
- ``optimizer`` (wrappers projecting or decaying after each update): :mod:`.mars_pgm`
  (``mars_pgm``, ``frobenius_pgm``), :mod:`.spd`;
- ``layer``: :mod:`.stochnorm`;
- ``weight_penalty``: :mod:`.l2_sp_k`, :mod:`.group_lasso_sp_layer`;
- ``procedure``: :mod:`.lp_ft`, :mod:`.wise_ft`.
"""
from tftransfer.methods.registry import MethodSpec, get, names, register  # noqa: F401
from tftransfer.methods import (bss, co_tuning, delta, group_lasso_sp_layer,  # noqa: F401,E402
                                l2_sp_k, loss_terms, lp_ft, lwf, mars_pgm, spd, stochnorm,
                                wise_ft)
