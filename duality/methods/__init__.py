"""What each method needs beyond its loss.

Every registered loss trains. A method is its loss plus, where the method
has them: a predictor (BYOL, SimSiam), an EMA target network with a cosine
momentum schedule (BYOL, MoCo, DINO), a queue (MoCo's negatives, SwAV's
optional extra codes), prototypes (SwAV: a model parameter, renormalised
every step and frozen for the first steps) and a centre (DINO). The state
lives in `TrainState.method` and so in every checkpoint.

`loss_inputs` turns model outputs into the loss call; `update_state` moves
queue and centre after the step; `ema_update` moves the target.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from duality import losses

TARGET_METHODS = ("byol", "moco", "dino")
PREDICTOR_METHODS = ("byol", "simsiam")
MULTICROP_METHODS = ("swav", "dino")


def validate(cfg, model_cfg, n_local_views: int, global_batch: int = 0):
    name = cfg.name
    if name not in losses.names():
        raise ValueError(f"method.name={name!r} is not a registered loss; choose one of {losses.names()}")
    unknown = set(cfg.get("loss", {}).keys()) - set(losses.get(name).hyperparameters)
    if unknown:
        raise ValueError(f"method.loss has unknown hyperparameter(s) {sorted(unknown)} for {name}; "
                         f"valid: {sorted(losses.get(name).hyperparameters)}")
    if name in PREDICTOR_METHODS and not model_cfg.get("predictor"):
        raise ValueError(f"{name} needs a predictor: set model.predictor, e.g. '4096-256'")
    if name == "swav" and not model_cfg.get("n_prototypes"):
        raise ValueError("swav needs prototypes: set model.n_prototypes, e.g. 3000")
    if name == "dino" and not model_cfg.get("dino_out"):
        raise ValueError("dino needs a head: set model.dino_out, e.g. 65536")
    q = cfg.get("queue_size", 0)
    if name == "swav" and q and cfg.get("queue_start_step", 0) * 2 * global_batch < q:
        need = -(-q // (2 * global_batch))
        raise ValueError(f"swav: the {q}-row queue fills after {need} steps of {global_batch} x 2 embeddings; "
                         f"set method.queue_start_step >= {need} so that empty rows never enter Sinkhorn")
    if n_local_views and name not in MULTICROP_METHODS:
        raise ValueError(f"multi-crop (data.local_views={n_local_views}) is only defined for {MULTICROP_METHODS}")


def init_state(cfg, model_cfg, params, batch_stats, rng, embed_dim: int) -> dict:
    state = {}
    if cfg.name in TARGET_METHODS:
        # A copy, not the online arrays: the train step donates its state, and
        # one buffer donated twice crashes XLA.
        state["target"] = jax.tree.map(jnp.copy, {"params": params, "batch_stats": batch_stats})
    if cfg.name == "moco" and cfg.get("queue_size", 0):
        state["queue"] = losses.init_queue(rng, cfg.queue_size, embed_dim)
    if cfg.name == "swav" and cfg.get("queue_size", 0):
        state["queue"] = jnp.zeros((cfg.queue_size, embed_dim), jnp.float32)
    if cfg.name == "dino":
        state["center"] = jnp.zeros((model_cfg.dino_out,), jnp.float32)
    return state


def ema_momentum(cfg, step, total_steps: int):
    """BYOL's cosine schedule: tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2, rising to 1."""
    base = cfg.get("ema_base", 0.996)
    return 1.0 - (1.0 - base) * (jnp.cos(math.pi * step / max(total_steps, 1)) + 1.0) / 2.0


def ema_update(target, online, tau):
    return jax.tree.map(lambda t, o: tau * t + (1.0 - tau) * o, target, online)


def loss_inputs(cfg, params, outs, target_outs, local_outs, method_state, step, rng):
    """(z1, z2, keyword inputs) of the loss for this method."""
    name = cfg.name
    o1, o2 = outs
    kw = dict(cfg.get("loss", {}))
    if name == "wmse":
        kw["rng"] = rng
    if name in ("byol", "simsiam"):
        t1, t2 = (target_outs if name == "byol" else outs)
        return o1["p"], o2["p"], dict(kw, target1=t1["z"], target2=t2["z"])
    if name == "moco":
        t1, t2 = target_outs
        return o1["z"], o2["z"], dict(kw, key1=t1["z"], key2=t2["z"], queue=method_state.get("queue"))
    if name == "swav":
        kw["prototypes"] = params["prototypes"]
        if "queue" in method_state:
            kw["queue"] = method_state["queue"]
        if local_outs:
            kw["extra_views"] = jnp.stack([o["z"] for o in local_outs])
        return o1["z"], o2["z"], kw
    if name == "dino":
        t1, t2 = target_outs
        kw.update(teacher1=t1["logits"], teacher2=t2["logits"], center=method_state["center"])
        if local_outs:
            kw["extra_views"] = jnp.stack([o["logits"] for o in local_outs])
        return o1["logits"], o2["logits"], kw
    return o1["z"], o2["z"], kw


def swav_loss(cfg, z1, z2, kw, step, axis_name):
    """SwAV uses its queue only once it holds real embeddings (after `queue_start_step`)."""
    fn = losses.get("swav")
    queue = kw.pop("queue", None)
    if queue is None:
        return fn(z1, z2, axis_name=axis_name, **kw)
    return jax.lax.cond(step >= cfg.get("queue_start_step", 0),
                        lambda: fn(z1, z2, axis_name=axis_name, queue=queue, **kw),
                        lambda: fn(z1, z2, axis_name=axis_name, **kw))


def update_state(cfg, method_state, outs, target_outs, axis_name) -> dict:
    """Queue and centre after the step (no gradient flows here)."""
    new = dict(method_state)
    sg = jax.lax.stop_gradient
    if cfg.name == "moco" and "queue" in method_state:
        keys = [target_outs[1]["z"]] + ([target_outs[0]["z"]] if cfg.get("loss", {}).get("symmetric") else [])
        new["queue"] = losses.enqueue(method_state["queue"], sg(jnp.concatenate(keys)), axis_name)
    if cfg.name == "swav" and "queue" in method_state:
        new["queue"] = losses.enqueue(method_state["queue"], sg(jnp.concatenate([outs[0]["z"], outs[1]["z"]])),
                                      axis_name)
    if cfg.name == "dino":
        new["center"] = losses.dino_center_update(method_state["center"], sg(target_outs[0]["logits"]),
                                                  sg(target_outs[1]["logits"]), cfg.get("center_momentum", 0.9),
                                                  axis_name)
    return new
