"""Entry point.

  python -m duality.main --config=configs/vicreg.py:fashion_mnist --workdir=workdirs/vicreg \
      [--config.optim.base_lr=0.5 ...]          # pretrain, then linear-probe the frozen encoder
  python -m duality.main --config=configs/loss_report.py   # every loss and Theorem 3.3 on synthetic data

A pretraining run resumes from --workdir when it holds a checkpoint. At the
end it linear-probes the frozen encoder on the test split and, with
`eval.baselines`, prints two baselines computed in the same run: raw pixels
and the same encoder at random initialisation.
"""
from __future__ import annotations

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", "configs/loss_report.py",
                                "Config file, optionally with ':arg' (path relative to the repository root).",
                                lock_config=True)
flags.DEFINE_string("workdir", "", "Where checkpoints, metrics and results go (pretraining).")
FLAGS = flags.FLAGS


def run_loss_report(cfg):
    import jax

    from duality.analysis import loss_report

    print(f"duality loss report on {jax.device_count()} {jax.default_backend()} device(s)")
    for n, m in [(cfg.batch, cfg.dim), (max(2, cfg.batch // 4), cfg.dim * 4)]:
        print(loss_report.format_report(loss_report.evaluate(n, m, cfg.seed)), flush=True)
    if cfg.plot:
        os.makedirs(os.path.dirname(cfg.plot) or ".", exist_ok=True)
        loss_report.plot_duality(cfg.plot, seed=cfg.seed)
        print(f"\nfigure: {cfg.plot}")


def run_pretraining(cfg, workdir: str):
    import jax

    from duality import probe, train

    if not workdir:
        raise app.UsageError("pretraining needs --workdir=DIR (checkpoints, metrics and results are written there)")
    trainer, state = train.train_and_evaluate(cfg, workdir)
    if jax.process_index() == 0:
        from duality.analysis import curves
        print(f"training curves: {curves.plot_training(workdir)}", flush=True)
    if int(state.step) < trainer.total_steps or not cfg.eval.linear_probe:
        return
    d, nc = trainer.data, cfg.data.num_classes
    kw = dict(num_classes=nc, epochs=cfg.eval.probe_epochs, weight_decay=cfg.eval.probe_wd)

    def probe_encoder(params, batch_stats):
        return probe.linear_probe(trainer.features(params, batch_stats, d.train_arrays), d.train_arrays["label"],
                                  trainer.features(params, batch_stats, d.test_arrays), d.test_arrays["label"], **kw)

    results = {"pretrained": probe_encoder(state.params, state.batch_stats)}
    if cfg.eval.baselines:
        init = trainer.init_state(cfg.seed)
        results["random_init"] = probe_encoder(init.params, init.batch_stats)
        results["raw_pixels"] = probe.linear_probe(d.train_arrays["image"] / 255.0, d.train_arrays["label"],
                                                   d.test_arrays["image"] / 255.0, d.test_arrays["label"], **kw)
    print(f"\nlinear probe on {cfg.data.name} test ({len(d.test_arrays['label'])} images), frozen features:")
    for name, r in results.items():
        print(f"  {name:<12} top-1 {r['top1']:6.2f}%   top-5 {r['top5']:6.2f}%")
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "linear_probe.json"), "w") as f:
            json.dump({"step": int(state.step), **results}, f, indent=2)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # jax logs every backend it probes at INFO
    cfg = FLAGS.config
    if cfg.get("job", "pretrain") == "loss_report":
        run_loss_report(cfg)
    else:
        run_pretraining(cfg, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
