"""DINO (Caron et al. 2021): centred and sharpened EMA teacher, 1024-way head, AdamW.

  python -m duality.main --config=configs/dino.py:fashion_mnist --workdir=workdirs/dino

Measured: not yet (a run of the command above takes about 15 minutes on a 2-core CPU).
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "dino", loss={'student_temperature': 0.1, 'teacher_temperature': 0.04}, model={'projector': '{h}-{h}-256', 'dino_out': 1024}, method={'ema_base': 0.996}, optim={'name': 'adamw', 'base_lr': 0.0005, 'weight_decay': 0.04})
