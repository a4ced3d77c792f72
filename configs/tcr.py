"""Total coding rate (Li et al. 2022; EMP-SSL constants) on unit embeddings.

  python -m duality.main --config=configs/tcr.py:fashion_mnist --workdir=workdirs/tcr

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "tcr", loss={'eps_sq': 0.2, 'inv_coeff': 200.0}, model={'projector': '{h}-{h}-128'})
