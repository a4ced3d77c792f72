"""Spectral contrastive loss (HaoChen et al. 2021) on embeddings projected to the unit sphere.

  python -m duality.main --config=configs/spectral.py:fashion_mnist --workdir=workdirs/spectral

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 1356 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 85.01% (raw pixels 84.46%,
random init 83.85%).

That figure predates the optimiser and probe of issue 11 (LARS with trust
coefficient 0.001, a 30-epoch AdamW probe). With base.py's LARS (0.02, lr
clipping) and the L-BFGS probe, seed 0: 89.64% (random-init encoder 84.96%,
+4.68), 530 s of training (docs/study_methods, configs/studies/methods.py:full).

Over seeds 0, 1, 2 (docs/study_methods, cells spectral-seed{0,1,2}; 2-core x86 CPU, jax 0.10.2,
3 epochs of 256 x 2 views, L-BFGS linear probe on the frozen encoder): Fashion-MNIST test
top-1 89.38 +- 0.23% (89.64, 89.22, 89.27; std over seeds, ddof 1), 4.84 +- 0.23
points over each seed's own random-init encoder; 530, 618, 619 s of training (other work shared the
machine at times):

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=18   # 19, 20: seeds 1, 2
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "spectral", loss={'mu': 1.0})
