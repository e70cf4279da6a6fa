"""Fine-tuning methods beyond the penalties of :mod:`tftransfer.penalty`, one module each
with its formula and paper (issue 19); :mod:`.registry` lists them by name."""
from tftransfer.methods.registry import MethodSpec, get, names, register  # noqa: F401
from tftransfer.methods import stochnorm  # noqa: F401,E402
from tftransfer.methods import mars_pgm  # noqa: F401,E402
from tftransfer.methods import spd  # noqa: F401,E402
from tftransfer.methods import l2_sp_k  # noqa: F401,E402
from tftransfer.methods import group_lasso_sp_layer  # noqa: F401,E402
from tftransfer.methods import lp_ft  # noqa: F401,E402
from tftransfer.methods import wise_ft  # noqa: F401,E402
