"""SimCLR (Chen et al. 2020), NT-Xent with 2N-2 negatives; the paper's tuned setting is tau=0.15, base_lr=0.5.

  python -m duality.main --config=configs/simclr.py:fashion_mnist --workdir=workdirs/simclr

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "simclr", loss={'temperature': 0.1})
