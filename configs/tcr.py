"""Total coding rate (Li et al. 2022; EMP-SSL constants) on unit embeddings.

  python -m duality.main --config=configs/tcr.py:fashion_mnist --workdir=workdirs/tcr

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 799 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 87.74% (raw pixels 84.46%,
random init 83.85%).

That figure predates the optimiser and probe of issue 11 (LARS with trust
coefficient 0.001, a 30-epoch AdamW probe). With base.py's LARS (0.02, lr
clipping) and the L-BFGS probe, seed 0: 90.49% (random-init encoder 84.96%,
+5.53), 488 s of training (docs/study_methods, configs/studies/methods.py:full).

Over seeds 0, 1, 2 (docs/study_methods, cells tcr-seed{0,1,2}; 2-core x86 CPU, jax 0.10.2,
3 epochs of 256 x 2 views, L-BFGS linear probe on the frozen encoder): Fashion-MNIST test
top-1 90.51 +- 0.24% (90.49, 90.76, 90.29; std over seeds, ddof 1), 5.97 +- 0.39
points over each seed's own random-init encoder; 488, 601, 567 s of training (other work shared the
machine at times):

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=33   # 34, 35: seeds 1, 2
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "tcr", loss={'eps_sq': 0.2, 'inv_coeff': 200.0}, model={'projector': '{h}-{h}-128'})
