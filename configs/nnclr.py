"""NNCLR (Dwibedi et al. 2021): a support queue's nearest neighbours as positives, with a predictor.

  python -m duality.main --config=configs/nnclr.py:fashion_mnist --workdir=workdirs/nnclr

The paper's heads (projector {h}-{h}-256, predictor {h}-256; {h} is 8192 on ImageNet and 1024
here) and tau 0.1 at every scale; the support queue is the paper's 98304 on ImageNet and 16384
on Fashion-MNIST, where the larger one would fill only at step 384 of 702 (16384 rows
hold the last 64 steps). The optimiser is base.py's LARS.

Measured (2-core x86 CPU, jax 0.10.2, 3 epochs of 256 x 2 views, L-BFGS linear probe on the
frozen encoder), Fashion-MNIST test top-1 over seeds 0, 1, 2: 90.05 +- 0.25% (89.76, 90.19,
90.21; std over seeds, ddof 1), each 5.51 +- 0.64 points over its own random-init encoder
(84.96, 84.49, 84.17); 563-873 s of training each with the machine shared. At the end each
projection's neighbour in the support queue has cosine 0.97 with it. Cells nnclr-seed{0,1,2}
of docs/study_methods:

  python -m duality.study --config=configs/studies/methods.py:full --workdir=docs/study_methods --cell=54
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "nnclr", loss={'temperature': 0.1}, model={'projector': '{h}-{h}-256'},
                              method={'predictor': '{h}-256', 'queue_size': 16384 if arg == "fashion_mnist" else 98304})
