"""VICReg-ctr (Garrido et al. 2023, eq. 13): VICReg-exp on K^T, sample-contrastive.

  python -m duality.main --config=configs/vicreg_ctr.py:fashion_mnist --workdir=workdirs/vicreg_ctr

Measured (2-core x86 CPU, base recipe, 3 epochs, 550 s wall): test top-1 85.38%, with the code
before commit "Review fixes" (which changed how augmentation keys are split); not re-measured since.
"""
from configs import base


def get_config(arg: str = "fashion_mnist"):
    return base.method_config(arg, "vicreg_ctr", loss={'temperature': 0.1})
