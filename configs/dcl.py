"""DCL (Yeh et al. 2021): SimCLR without the positive in the denominator.

  python -m duality.main --config=configs/dcl.py:fashion_mnist --workdir=workdirs/dcl

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "dcl", loss={'temperature': 0.1})
