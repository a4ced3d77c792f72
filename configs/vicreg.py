"""VICReg (Bardes et al. 2022) on the CPU default.

  python -m duality.main --config=configs/vicreg.py:fashion_mnist --workdir=workdirs/vicreg
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    c = base.get_config(arg)
    c.method.name = "vicreg"
    return c
