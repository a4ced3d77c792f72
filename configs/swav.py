"""SwAV (Caron et al. 2020): 100 prototypes, Sinkhorn eps 0.05, prototypes frozen for 100 steps.

  python -m duality.main --config=configs/swav.py:fashion_mnist --workdir=workdirs/swav

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 986 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 85.62% (raw pixels 84.46%,
random init 83.85%).

That figure predates the optimiser and probe of issue 11 (LARS with trust
coefficient 0.001, a 30-epoch AdamW probe). With base.py's LARS (0.02, lr
clipping) and the L-BFGS probe, seed 0: 90.18% (random-init encoder 84.96%,
+5.22), 536 s of training (docs/study_methods, configs/studies/methods.py:full).

Over seeds 0, 1, 2 (docs/study_methods, cells swav-seed{0,1,2}; 2-core x86 CPU, jax 0.10.2,
3 epochs of 256 x 2 views, L-BFGS linear probe on the frozen encoder): Fashion-MNIST test
top-1 89.96 +- 0.23% (90.18, 89.96, 89.73; std over seeds, ddof 1), 5.42 +- 0.18
points over each seed's own random-init encoder; 536, 402, 402 s of training (other work shared the
machine at times):

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=51   # 52, 53: seeds 1, 2
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "swav", loss={'temperature': 0.1, 'epsilon': 0.05}, model={'projector': '{h}-128'}, method={'n_prototypes': 100, 'freeze_prototypes_steps': 100})
