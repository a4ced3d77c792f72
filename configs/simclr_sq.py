"""SimCLR-sq (Garrido et al. 2023, Sec. 3): negatives' similarities squared.

  python -m duality.main --config=configs/simclr_sq.py:fashion_mnist --workdir=workdirs/simclr_sq

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "simclr_sq", loss={'temperature': 0.1})
