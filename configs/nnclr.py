"""NNCLR (Dwibedi et al. 2021): a support queue's nearest neighbours as positives, with a predictor.

  python -m duality.main --config=configs/nnclr.py:fashion_mnist --workdir=workdirs/nnclr

The paper's heads (projector {h}-{h}-256, predictor {h}-256; {h} is 8192 on ImageNet and 1024
here) and tau 0.1 at every scale; the support queue is the paper's 98304 on ImageNet and 16384
on Fashion-MNIST, where the larger one would fill only at step 384 of 702 (16384 rows
hold the last 64 steps). The optimiser is base.py's LARS.

Measured (2-core x86 CPU, jax 0.10.2, 3 epochs of 256 x 2 views, L-BFGS linear probe on the
frozen encoder), seed 0: Fashion-MNIST test top-1 89.76% (random-init encoder 84.96%, +4.80),
563 s of training with the machine shared; at the end each projection's neighbour in the
support queue has cosine 0.97 with it (docs/study_methods, configs/studies/methods.py:full;
seeds 1 and 2 to come).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "nnclr", loss={'temperature': 0.1}, model={'projector': '{h}-{h}-256'},
                              method={'predictor': '{h}-256', 'queue_size': 16384 if arg == "fashion_mnist" else 98304})
