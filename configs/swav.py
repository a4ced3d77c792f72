"""SwAV (Caron et al. 2020): 100 prototypes, Sinkhorn eps 0.05, prototypes frozen for 100 steps.

  python -m duality.main --config=configs/swav.py:fashion_mnist --workdir=workdirs/swav

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "swav", loss={'temperature': 0.1, 'epsilon': 0.05}, model={'projector': '{h}-128', 'n_prototypes': 100}, method={'freeze_prototypes_steps': 100})
