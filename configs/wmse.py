"""W-MSE (Ermolov et al. 2021): whitening of 64-d embeddings on sub-batches of 128, Adam.

  python -m duality.main --config=configs/wmse.py:fashion_mnist --workdir=workdirs/wmse

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 792 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 87.05% (raw pixels 84.46%,
random init 83.85%).

That figure predates the probe of issue 11 (a 30-epoch AdamW probe, which read
about a point low). With the L-BFGS probe, seed 0: 88.84% (random-init encoder
84.96%, +3.88), 529 s of training (docs/study_methods,
configs/studies/methods.py:full).

Over seeds 0, 1, 2 (docs/study_methods, cells wmse-seed{0,1,2}; 2-core x86 CPU, jax 0.10.2,
3 epochs of 256 x 2 views, L-BFGS linear probe on the frozen encoder): Fashion-MNIST test
top-1 88.72 +- 0.30% (88.84, 88.94, 88.37; std over seeds, ddof 1), 4.18 +- 0.29
points over each seed's own random-init encoder; 529, 613, 626 s of training (other work shared the
machine at times):

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=36   # 37, 38: seeds 1, 2
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "wmse", loss={'w_size': 128}, model={'projector': '{h}-64'}, optim={'name': 'adamw', 'base_lr': 0.001, 'weight_decay': 1e-06})
