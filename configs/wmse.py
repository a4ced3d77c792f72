"""W-MSE (Ermolov et al. 2021): whitening of 64-d embeddings on sub-batches of 128, Adam.

  python -m duality.main --config=configs/wmse.py:fashion_mnist --workdir=workdirs/wmse

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "wmse", loss={'w_size': 128}, model={'projector': '{h}-64'}, optim={'name': 'adamw', 'base_lr': 0.001, 'weight_decay': 1e-06})
