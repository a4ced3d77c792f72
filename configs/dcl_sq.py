"""DCL-sq (Garrido et al. 2023, Sec. 3).

  python -m duality.main --config=configs/dcl_sq.py:fashion_mnist --workdir=workdirs/dcl_sq

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "dcl_sq", loss={'temperature': 0.1})
