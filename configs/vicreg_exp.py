"""VICReg-exp (Garrido et al. 2023, eq. 11-12): log-sum-exp covariance term.

  python -m duality.main --config=configs/vicreg_exp.py:fashion_mnist --workdir=workdirs/vicreg_exp

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "vicreg_exp", loss={'temperature': 0.1})
