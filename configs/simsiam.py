"""SimSiam (Chen & He 2021): predictor bottleneck, stop-gradient, SGD.

  python -m duality.main --config=configs/simsiam.py:fashion_mnist --workdir=workdirs/simsiam

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "simsiam", model={'projector': '{h}-{h}-{h}', 'predictor': '256-{h}'}, optim={'name': 'sgd', 'base_lr': 0.05, 'weight_decay': 0.0001})
