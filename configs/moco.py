"""MoCo v2 (Chen et al. 2020): momentum key encoder, 4096-key queue, tau 0.2, SGD.

  python -m duality.main --config=configs/moco.py:fashion_mnist --workdir=workdirs/moco

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "moco", loss={'temperature': 0.2}, model={'projector': '{h}-128'}, method={'ema_base': 0.99, 'queue_size': 4096}, optim={'name': 'sgd', 'base_lr': 0.06, 'weight_decay': 0.0005})
