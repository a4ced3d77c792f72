"""SimCLR-abs (Garrido et al. 2023, Sec. 3): 68.71% vs 68.61% for SimCLR on ImageNet.

  python -m duality.main --config=configs/simclr_abs.py:fashion_mnist --workdir=workdirs/simclr_abs

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "simclr_abs", loss={'temperature': 0.1})
