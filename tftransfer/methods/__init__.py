"""Fine-tuning methods beyond the penalties of :mod:`tftransfer.penalty`, one module each
with its formula and paper (issue 19); :mod:`.registry` lists them by name."""
from tftransfer.methods.registry import MethodSpec, get, names, register  # noqa: F401
from tftransfer.methods import bss  # noqa: F401,E402
from tftransfer.methods import co_tuning  # noqa: F401,E402
from tftransfer.methods import delta  # noqa: F401,E402
from tftransfer.methods import loss_terms  # noqa: F401,E402
from tftransfer.methods import lwf  # noqa: F401,E402
