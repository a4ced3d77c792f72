"""SwAV (Caron et al. 2020): 100 prototypes, Sinkhorn eps 0.05, prototypes frozen for 100 steps.

  python -m duality.main --config=configs/swav.py:fashion_mnist --workdir=workdirs/swav

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "swav", loss={'temperature': 0.1, 'epsilon': 0.05}, model={'projector': '{h}-128', 'n_prototypes': 100}, method={'freeze_prototypes_steps': 100})
