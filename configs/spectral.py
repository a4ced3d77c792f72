"""Spectral contrastive loss (HaoChen et al. 2021) on embeddings projected to the unit sphere.

  python -m duality.main --config=configs/spectral.py:fashion_mnist --workdir=workdirs/spectral

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "spectral", loss={'mu': 1.0})
