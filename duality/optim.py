"""Optimisers and schedules: LARS (with lr clipping), SGD with momentum, AdamW; parameter groups.

lr = base_lr * global_batch / 256 (the linear scaling of SimCLR, VICReg and
Barlow Twins), linear warm-up then cosine decay to `final_lr_ratio * lr`.
Biases and normalisation parameters (every parameter of rank < 2) get no
weight decay and, under LARS, no trust-ratio adaptation, as in the official
VICReg / Barlow Twins / BYOL code.

LARS (You et al. 2017) rescales each weight's update u (gradient plus weight
decay) by the trust ratio q = trust_coefficient * ||w|| / ||u||, so that one
step moves a weight by lr * trust_coefficient of its norm. How large that is
decides whether a short run trains at all: the ImageNet recipes use
trust_coefficient 0.001 at lr 1.6-7.2 (batch 2048-4096), i.e. 1.6e-3 to
7.2e-3 of the norm per step; the same 0.001 at batch 256 and lr 0.3 moves a
weight by 3e-4 of its norm per step, and 702 steps leave every layer within
5-13% of its initialisation. `clip_lr=True` is LARC's clipping, as
solo-learn's small-batch recipes use it: the adapted rate is
min(trust_coefficient * ||w|| / ||u||, lr), so a step moves a weight by at
most `trust_coefficient` of its norm and is never larger than plain SGD's at
the same lr (the rate is clipped before momentum, as there).

Parameter groups (`optim.groups`): a top-level module of the model ("backbone",
"proj", "pred", "prototypes", "dino_head") can get its own base_lr,
weight_decay or schedule ("cosine": the run's warm-up + cosine; "constant":
the peak lr at every step, no warm-up, which is SimSiam's fixed predictor
lr), through `optax.multi_transform`.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMISERS = ("lars", "sgd", "adamw")
SCHEDULES = ("cosine", "constant")
GROUP_FIELDS = ("base_lr", "weight_decay", "schedule", "trust_coefficient")
DEFAULT = "default"  # the label of every parameter outside a named group


def warmup_steps(cfg, steps_per_epoch: int) -> int:
    """`warmup_epochs` (recipes state warm-up in epochs, so it follows the batch size) or `warmup_steps`."""
    epochs, steps = cfg.get("warmup_epochs", 0), cfg.get("warmup_steps", 0)
    if epochs and steps:
        raise ValueError(f"optim: warmup_epochs={epochs} and warmup_steps={steps} are both set; set one to 0")
    return int(round(epochs * steps_per_epoch)) if epochs else int(steps)


def learning_rate(cfg, global_batch: int, total_steps: int, steps_per_epoch: int = 1):
    peak = cfg.base_lr * global_batch / 256
    schedule = cfg.get("schedule", "cosine")
    if schedule == "constant":
        return optax.constant_schedule(peak)
    if schedule != "cosine":
        raise ValueError(f"optim.schedule={schedule!r}: choose one of {SCHEDULES}")
    warmup = min(warmup_steps(cfg, steps_per_epoch), max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, warmup, max(total_steps, warmup + 1), end_value=peak * cfg.get("final_lr_ratio", 0.001))


def weights_mask(params):
    """True for weight matrices and kernels (rank >= 2): the parameters that get decay and trust ratios."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


class TrustRatioState(NamedTuple):
    count: jax.Array  # applied updates so far (the lr schedule's step), for the clipped rate


def scale_by_trust_ratio(trust_coefficient: float, schedule=None, clip: bool = False):
    """LARS's per-weight trust ratio; with `clip`, LARC's min(ratio, lr) / lr (see the module docstring).

    Unclipped: u -> trust_coefficient * ||w|| / ||u|| * u. Clipped: the ratio
    is divided by the current lr and capped at 1, so that after the lr is
    applied the step is min(trust_coefficient ||w|| / ||u||, lr) * u. A zero
    weight or update keeps ratio 1, as in optax and the reference code.
    """
    if clip and schedule is None:
        raise ValueError("a clipped trust ratio needs the lr schedule")

    def init_fn(params):
        del params
        return TrustRatioState(count=jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params):
        if params is None:
            raise ValueError("the LARS trust ratio needs the parameters: call update(grads, state, params)")
        lr = schedule(state.count) if clip else None

        def scale(u, w):
            w_norm, u_norm = jnp.linalg.norm(w), jnp.linalg.norm(u)
            ratio = jnp.where((w_norm > 0) & (u_norm > 0), trust_coefficient * w_norm / jnp.maximum(u_norm, 1e-30),
                              1.0)
            if clip:
                ratio = jnp.minimum(ratio / jnp.maximum(lr, 1e-30), 1.0)
            return (u * ratio).astype(u.dtype)

        return jax.tree.map(scale, updates, params), TrustRatioState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def lars(schedule, weight_decay: float, trust_coefficient: float, clip_lr: bool, momentum: float = 0.9):
    """LARS: decay, trust ratio (weights only), lr, heavy-ball momentum; optax.lars's order."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay, weights_mask),
        optax.masked(scale_by_trust_ratio(trust_coefficient, schedule, clip_lr), weights_mask),
        optax.scale_by_learning_rate(schedule),
        optax.trace(decay=momentum))


def _single(cfg, global_batch: int, total_steps: int, steps_per_epoch: int):
    schedule = learning_rate(cfg, global_batch, total_steps, steps_per_epoch)
    wd = cfg.weight_decay
    if cfg.name == "lars":
        tx = lars(schedule, wd, cfg.get("trust_coefficient", 0.001), bool(cfg.get("clip_lr", False)),
                  cfg.get("momentum", 0.9))
    elif cfg.name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(wd, weights_mask),
                         optax.sgd(schedule, momentum=cfg.get("momentum", 0.9)))
    elif cfg.name == "adamw":
        tx = optax.adamw(schedule, weight_decay=wd, mask=weights_mask)
    else:
        raise ValueError(f"optim.name={cfg.name!r}: choose 'lars', 'sgd' or 'adamw'")
    return tx, schedule


def group_labels(params, groups) -> dict:
    """Each leaf's group: its top-level module's name when that module has a group, else 'default'."""
    return {k: jax.tree.map(lambda _, k=k: k if k in groups else DEFAULT, v) for k, v in params.items()}


def check_groups(groups, modules) -> None:
    """Every group names a top-level module of the model and only fields a group may set."""
    for name, fields in dict(groups or {}).items():
        if name not in modules:
            raise ValueError(f"optim.groups.{name}: the model has no module {name!r}; groups are set per top-level "
                             f"module, one of {sorted(modules)}")
        unknown = set(dict(fields)) - set(GROUP_FIELDS)
        if unknown:
            raise ValueError(f"optim.groups.{name} has unknown field(s) {sorted(unknown)}; valid: {list(GROUP_FIELDS)}")
        if dict(fields).get("schedule", "cosine") not in SCHEDULES:
            raise ValueError(f"optim.groups.{name}.schedule={fields['schedule']!r}: choose one of {SCHEDULES}")


def make(cfg, global_batch: int, total_steps: int, steps_per_epoch: int = 1):
    """(optax transformation, schedule of the default group) for `cfg` (a config's `optim` block).

    With `cfg.groups`, the params must be a dict of top-level modules (as the
    model's are); each group gets the default transformation rebuilt with its
    own fields, through optax.multi_transform.
    """
    groups = {k: dict(v) for k, v in dict(cfg.get("groups", {}) or {}).items()}
    tx, schedule = _single(cfg, global_batch, total_steps, steps_per_epoch)
    if groups:
        transforms = {DEFAULT: tx}
        for name, fields in groups.items():
            sub = ml_collections.ConfigDict({**dict(cfg.items()), **fields})
            transforms[name] = _single(sub, global_batch, total_steps, steps_per_epoch)[0]
        tx = optax.multi_transform(transforms, lambda params: group_labels(params, groups))
    if cfg.get("clip_norm"):
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    return tx, schedule

