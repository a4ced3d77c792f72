"""BYOL (Grill et al. 2020): predictor on an EMA target, cosine momentum schedule (0.99 for short runs).

  python -m duality.main --config=configs/byol.py:fashion_mnist --workdir=workdirs/byol

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 887 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 82.89% (raw pixels 84.46%,
random init 83.85%). Below both baselines at this budget
(one seed, hyperparameters not tuned for 702 steps).

That figure predates the optimiser and probe of issue 11 (it was LARS with trust
coefficient 0.001 and a 30-epoch AdamW probe): this config now trains with
base.py's LARS (0.02, lr clipping) and is probed by the converged L-BFGS
regression, and has not been re-measured yet.
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "byol", model={'projector': '{h}-{h}-256', 'predictor': '{h}-256'}, method={'ema_base': 0.99})
