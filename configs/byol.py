"""BYOL (Grill et al. 2020): predictor on an EMA target, cosine momentum schedule (0.99 for short runs).

  python -m duality.main --config=configs/byol.py:fashion_mnist --workdir=workdirs/byol

Measured: not yet (Fashion-MNIST numbers for every method come with issue 3's study).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "byol", model={'projector': '{h}-{h}-256', 'predictor': '{h}-256'}, method={'ema_base': 0.99})
