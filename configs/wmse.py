"""W-MSE (Ermolov et al. 2021): whitening of 64-d embeddings on sub-batches of 128, Adam.

  python -m duality.main --config=configs/wmse.py:fashion_mnist --workdir=workdirs/wmse

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "wmse", loss={'w_size': 128}, model={'projector': '{h}-64'}, optim={'name': 'adamw', 'base_lr': 0.001, 'weight_decay': 1e-06})
