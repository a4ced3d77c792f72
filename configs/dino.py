"""DINO (Caron et al. 2021): centred and sharpened EMA teacher, 1024-way head, AdamW.

  python -m duality.main --config=configs/dino.py:fashion_mnist --workdir=workdirs/dino

Measured (2-core x86 CPU, jax 0.10.2, this file's recipe: small convnet, 3 epochs of
256 x 2 views; 1367 s of training, the machine shared with other work): linear
probe on the frozen encoder, Fashion-MNIST test top-1 86.34% (raw pixels 84.46%,
random init 83.85%).

That figure predates the probe of issue 11 (it was a 30-epoch AdamW probe, which
read about a point low); with the converged L-BFGS regression this config has
not been re-measured yet.
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "dino", loss={'student_temperature': 0.1, 'teacher_temperature': 0.04}, model={'projector': '{h}-{h}-256', 'dino_out': 1024}, method={'ema_base': 0.996}, optim={'name': 'adamw', 'base_lr': 0.0005, 'weight_decay': 0.04})
