"""Entry point.

  python -m duality.main --config=configs/loss_report.py [--config.batch=512 ...]

The loss report (the default config) evaluates every registered loss (value
and gradient, jit) on synthetic embedding families and prints both sides of
Theorem 3.3. Pretraining configs arrive with the training system.
"""
from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file(
    "config", "configs/loss_report.py", "Config file (path relative to the repository root).", lock_config=True)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # jax logs every backend it probes at INFO
    import jax

    from duality.analysis import loss_report

    cfg = FLAGS.config
    print(f"duality loss report on {jax.device_count()} {jax.default_backend()} device(s)")
    for n, m in [(cfg.batch, cfg.dim), (max(2, cfg.batch // 4), cfg.dim * 4)]:
        print(loss_report.format_report(loss_report.evaluate(n, m, cfg.seed)), flush=True)
    if cfg.plot:
        os.makedirs(os.path.dirname(cfg.plot) or ".", exist_ok=True)
        loss_report.plot_duality(cfg.plot, seed=cfg.seed)
        print(f"\nfigure: {cfg.plot}")


if __name__ == "__main__":
    app.run(main)
