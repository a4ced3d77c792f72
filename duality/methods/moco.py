"""MoCo v2 (He et al. 2020; Chen et al. 2020): an EMA key encoder and a queue of past keys as negatives.

The queries are the online projections, the keys the target's; after each
step the target's keys of view 2 (and of view 1 with `loss.symmetric`) enter
the `queue_size`-row queue of L2-normalised keys (duality.losses.enqueue:
every device's keys, in global order).
"""
import jax
import jax.numpy as jnp

from duality import losses
from duality.methods import register
from duality.methods.base import Method


@register("moco")
class MoCo(Method):
    fields = {"ema_base": 0.99, "queue_size": 4096}
    ema_target = True
    small = {"queue_size": 32}

    def check(self, cfg, *, global_batch, local_views):
        super().check(cfg, global_batch=global_batch, local_views=local_views)
        self.at_least(cfg, "queue_size", 0, "4096 (0: negatives from the batch only)")

    def init_state(self, cfg, params, batch_stats, rng, embed_dim):
        state = super().init_state(cfg, params, batch_stats, rng, embed_dim)
        if cfg.queue_size:
            state["queue"] = losses.init_queue(rng, cfg.queue_size, embed_dim)
        return state

    def loss_inputs(self, cfg, fwd):
        (o1, o2), (t1, t2) = fwd.outs, fwd.target_outs
        return o1["z"], o2["z"], {"key1": t1["z"], "key2": t2["z"], "queue": fwd.state.get("queue")}

    def after_update(self, cfg, params, batch_stats, fwd, progress, axis_name):
        params, state = super().after_update(cfg, params, batch_stats, fwd, progress, axis_name)
        if "queue" in state:
            t1, t2 = fwd.target_outs
            keys = [t2["z"]] + ([t1["z"]] if cfg.loss.symmetric else [])
            state["queue"] = losses.enqueue(state["queue"], jax.lax.stop_gradient(jnp.concatenate(keys)), axis_name)
        return params, state
