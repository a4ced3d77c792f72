"""Total coding rate (Li et al. 2022; EMP-SSL constants) on unit embeddings.

  python -m duality.main --config=configs/tcr.py:fashion_mnist --workdir=workdirs/tcr

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 799 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 87.74% (raw pixels 84.46%,
random init 83.85%).

That figure predates the optimiser and probe of issue 11 (it was LARS with trust
coefficient 0.001 and a 30-epoch AdamW probe): this config now trains with
base.py's LARS (0.02, lr clipping) and is probed by the converged L-BFGS
regression, and has not been re-measured yet.
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "tcr", loss={'eps_sq': 0.2, 'inv_coeff': 200.0}, model={'projector': '{h}-{h}-128'})
