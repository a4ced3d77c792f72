"""SimCLR-sq (Garrido et al. 2023, Sec. 3): negatives' similarities squared.

  python -m duality.main --config=configs/simclr_sq.py:fashion_mnist --workdir=workdirs/simclr_sq

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 871 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 87.25% (raw pixels 84.46%,
random init 83.85%).

That figure predates the optimiser and probe of issue 11 (LARS with trust
coefficient 0.001, a 30-epoch AdamW probe). With base.py's LARS (0.02, lr
clipping) and the L-BFGS probe, seed 0: 90.22% (random-init encoder 84.96%,
+5.26), 506 s of training with the machine shared (docs/study_methods,
configs/studies/methods.py:full).

Over seeds 0, 1, 2 (docs/study_methods, cells simclr_sq-seed{0,1,2}; 2-core x86 CPU, jax 0.10.2,
3 epochs of 256 x 2 views, L-BFGS linear probe on the frozen encoder): Fashion-MNIST test
top-1 90.20 +- 0.14% (90.22, 90.32, 90.05; std over seeds, ddof 1), 5.66 +- 0.34
points over each seed's own random-init encoder; 506, 760, 529 s of training (other work shared the
machine at times):

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=6   # 7, 8: seeds 1, 2
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "simclr_sq", loss={'temperature': 0.1})
