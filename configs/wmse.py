"""W-MSE (Ermolov et al. 2021): whitening of 64-d embeddings on sub-batches of 128, Adam.

  python -m duality.main --config=configs/wmse.py:fashion_mnist --workdir=workdirs/wmse

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 792 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 87.05% (raw pixels 84.46%,
random init 83.85%).

That figure predates the probe of issue 11 (it was a 30-epoch AdamW probe, which
read about a point low); with the converged L-BFGS regression this config has
not been re-measured yet.
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "wmse", loss={'w_size': 128}, model={'projector': '{h}-64'}, optim={'name': 'adamw', 'base_lr': 0.001, 'weight_decay': 1e-06})
