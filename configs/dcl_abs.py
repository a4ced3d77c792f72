"""DCL-abs (Garrido et al. 2023, Sec. 3).

  python -m duality.main --config=configs/dcl_abs.py:fashion_mnist --workdir=workdirs/dcl_abs

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "dcl_abs", loss={'temperature': 0.1})
