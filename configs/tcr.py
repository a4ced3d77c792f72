"""Total coding rate (Li et al. 2022; EMP-SSL constants) on unit embeddings.

  python -m duality.main --config=configs/tcr.py:fashion_mnist --workdir=workdirs/tcr

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "tcr", loss={'eps_sq': 0.2, 'inv_coeff': 200.0}, model={'projector': '{h}-{h}-128'})
