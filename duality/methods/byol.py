"""BYOL (Grill et al. 2020): a predictor on the online network against an EMA target's projections.

The target is an exponential moving average of the online parameters and
BatchNorm statistics with BYOL's cosine schedule from `ema_base` to 1
(base.ema_momentum); the loss compares each view's prediction with the
target's projection of the other view (duality.losses.byol).
"""
from duality import models
from duality.methods import register
from duality.methods.base import Method


@register("byol")
class BYOL(Method):
    fields = {"predictor": "4096-256", "ema_base": 0.996}
    ema_target = True
    small = {"predictor": "16-16"}

    def check(self, cfg, *, global_batch, local_views):
        super().check(cfg, global_batch=global_batch, local_views=local_views)
        models.parse_spec(cfg.predictor)  # "method.predictor='{h}-256'": widths joined by '-'

    def heads(self, cfg, embed_dim, *, axis_name=None, dtype=None):
        return {"pred": lambda: models.MLP(models.parse_spec(cfg.predictor), axis_name=axis_name, dtype=dtype)}

    def loss_inputs(self, cfg, fwd):
        (o1, o2), (t1, t2) = fwd.outs, fwd.target_outs
        return o1["pred"], o2["pred"], {"target1": t1["z"], "target2": t2["z"]}
