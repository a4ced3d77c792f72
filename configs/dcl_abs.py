"""DCL-abs (Garrido et al. 2023, Sec. 3).

  python -m duality.main --config=configs/dcl_abs.py:fashion_mnist --workdir=workdirs/dcl_abs

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 799 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 87.99% (raw pixels 84.46%,
random init 83.85%).

That figure predates the optimiser and probe of issue 11 (LARS with trust
coefficient 0.001, a 30-epoch AdamW probe). With base.py's LARS (0.02, lr
clipping) and the L-BFGS probe, seed 0: 90.57% (random-init encoder 84.96%,
+5.61), 580 s of training with the machine shared, docs/study_methods,
configs/studies/methods.py:full; seeds 1 and 2 to come.

Over seeds 0, 1, 2 (docs/study_methods, cells dcl_abs-seed{0,1,2}; 2-core x86 CPU, jax 0.10.2,
3 epochs of 256 x 2 views, L-BFGS linear probe on the frozen encoder): Fashion-MNIST test
top-1 90.39 +- 0.18% (90.57, 90.39, 90.22; std over seeds, ddof 1), 5.85 +- 0.22
points over each seed's own random-init encoder; 580, 790, 432 s of training (other work shared the
machine at times):

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=15   # 16, 17: seeds 1, 2
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "dcl_abs", loss={'temperature': 0.1})
