"""Barlow Twins (Zbontar et al. 2021): lambda = 0.0051, LARS.

  python -m duality.main --config=configs/barlow_twins.py:fashion_mnist --workdir=workdirs/barlow_twins

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "barlow_twins", loss={'lambd': 0.0051}, optim={'base_lr': 0.2})
