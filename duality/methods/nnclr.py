"""NNCLR (Dwibedi et al. 2021): nearest neighbours from a support queue as positives.

The projections of view 1 enter a `queue_size`-row support queue after each
step (L2-normalised, every device's rows in global order; it starts as
random unit vectors, as MoCo's does). The loss (duality.losses.nnclr) looks
up each projection's nearest support row and asks it to identify the same
sample's other view among the batch. With a `predictor` (the paper's
recipe: 4096-256) the other views are the predictions and the lookups use
the projections; with predictor="" both are the projections.
"""
import jax

from duality import losses, models
from duality.methods import register
from duality.methods.base import Method


@register("nnclr")
class NNCLR(Method):
    fields = {"predictor": "4096-256", "queue_size": 98304}
    small = {"predictor": "16-16", "queue_size": 64}

    def check(self, cfg, *, global_batch, local_views):
        super().check(cfg, global_batch=global_batch, local_views=local_views)
        if cfg.predictor:
            models.parse_spec(cfg.predictor)
        self.at_least(cfg, "queue_size", 1, 98304)

    def heads(self, cfg, embed_dim, *, axis_name=None, dtype=None):
        if not cfg.predictor:
            return {}
        return {"pred": lambda: models.MLP(models.parse_spec(cfg.predictor), axis_name=axis_name, dtype=dtype)}

    def init_state(self, cfg, params, batch_stats, rng, embed_dim):
        return {"support": losses.init_queue(rng, cfg.queue_size, embed_dim)}

    def loss_inputs(self, cfg, fwd):
        o1, o2 = fwd.outs
        out = "pred" if cfg.predictor else "z"
        return o1[out], o2[out], {"support": fwd.state["support"], "query1": o1["z"], "query2": o2["z"]}

    def after_update(self, cfg, params, batch_stats, fwd, progress, axis_name):
        state = dict(fwd.state)
        state["support"] = losses.enqueue(state["support"], jax.lax.stop_gradient(fwd.outs[0]["z"]), axis_name)
        return params, state
