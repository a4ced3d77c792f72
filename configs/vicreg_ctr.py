"""VICReg-ctr (Garrido et al. 2023, eq. 13): VICReg-exp on K^T, sample-contrastive.

  python -m duality.main --config=configs/vicreg_ctr.py:fashion_mnist --workdir=workdirs/vicreg_ctr

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "vicreg_ctr", loss={'temperature': 0.1})
