"""VICReg-exp (Garrido et al. 2023, eq. 11-12): log-sum-exp covariance term.

  python -m duality.main --config=configs/vicreg_exp.py:fashion_mnist --workdir=workdirs/vicreg_exp

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 833 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 86.63% (raw pixels 84.46%,
random init 83.85%).

That figure predates the optimiser and probe of issue 11 (LARS with trust
coefficient 0.001, a 30-epoch AdamW probe). With base.py's LARS (0.02, lr
clipping) and the L-BFGS probe, seed 0: 89.90% (random-init encoder 84.96%,
+4.94), 542 s of training (docs/study_methods, configs/studies/methods.py:full).

Over seeds 0, 1, 2 (docs/study_methods, cells vicreg_exp-seed{0,1,2}; 2-core x86 CPU, jax 0.10.2,
3 epochs of 256 x 2 views, L-BFGS linear probe on the frozen encoder): Fashion-MNIST test
top-1 90.04 +- 0.12% (89.90, 90.14, 90.07; std over seeds, ddof 1), 5.50 +- 0.50
points over each seed's own random-init encoder; 542, 451, 437 s of training (other work shared the
machine at times):

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=24   # 25, 26: seeds 1, 2
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "vicreg_exp", loss={'temperature': 0.1})
