"""Optimisers and schedules: LARS, SGD with momentum, AdamW.

lr = base_lr * global_batch / 256 (the linear scaling of SimCLR, VICReg and
Barlow Twins), linear warm-up then cosine decay to `final_lr_ratio * lr`.
Biases and normalisation parameters (every parameter of rank < 2) get no
weight decay and, under LARS, no trust-ratio adaptation, as in the official
VICReg / Barlow Twins / BYOL code.
"""
from __future__ import annotations

import jax
import optax


def warmup_steps(cfg, steps_per_epoch: int) -> int:
    """`warmup_epochs` (recipes state warm-up in epochs, so it follows the batch size) or `warmup_steps`."""
    epochs, steps = cfg.get("warmup_epochs", 0), cfg.get("warmup_steps", 0)
    if epochs and steps:
        raise ValueError(f"optim: warmup_epochs={epochs} and warmup_steps={steps} are both set; set one to 0")
    return int(round(epochs * steps_per_epoch)) if epochs else int(steps)


def learning_rate(cfg, global_batch: int, total_steps: int, steps_per_epoch: int = 1):
    peak = cfg.base_lr * global_batch / 256
    warmup = min(warmup_steps(cfg, steps_per_epoch), max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, warmup, max(total_steps, warmup + 1), end_value=peak * cfg.get("final_lr_ratio", 0.001))


def weights_mask(params):
    """True for weight matrices and kernels (rank >= 2): the parameters that get decay and trust ratios."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make(cfg, global_batch: int, total_steps: int, steps_per_epoch: int = 1):
    """(optax transformation, schedule) for `cfg` (a config's `optim` block)."""
    schedule = learning_rate(cfg, global_batch, total_steps, steps_per_epoch)
    wd = cfg.weight_decay
    if cfg.name == "lars":
        tx = optax.lars(schedule, weight_decay=wd, weight_decay_mask=weights_mask, trust_coefficient=0.001,
                        eps=0.0, trust_ratio_mask=weights_mask, momentum=cfg.get("momentum", 0.9))
    elif cfg.name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(wd, weights_mask),
                         optax.sgd(schedule, momentum=cfg.get("momentum", 0.9)))
    elif cfg.name == "adamw":
        tx = optax.adamw(schedule, weight_decay=wd, mask=weights_mask)
    else:
        raise ValueError(f"optim.name={cfg.name!r}: choose 'lars', 'sgd' or 'adamw'")
    if cfg.get("clip_norm"):
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    return tx, schedule
