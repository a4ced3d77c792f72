"""SimCLR-sq (Garrido et al. 2023, Sec. 3): negatives' similarities squared.

  python -m duality.main --config=configs/simclr_sq.py:fashion_mnist --workdir=workdirs/simclr_sq

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "simclr_sq", loss={'temperature': 0.1})
