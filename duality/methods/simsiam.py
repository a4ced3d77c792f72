"""SimSiam (Chen & He 2021): BYOL without the target network, a stop-gradient instead.

The predictor maps each view's projection to the other's; the targets are
the same network's projections with their gradient stopped (inside
duality.losses.simsiam). The reference's fixed predictor lr is an optimiser
parameter group (config optim.groups={"pred": {"schedule": "constant"}}).
"""
from duality import models
from duality.methods import register
from duality.methods.base import Method


@register("simsiam")
class SimSiam(Method):
    fields = {"predictor": "512-2048"}
    small = {"predictor": "16-16"}

    def check(self, cfg, *, global_batch, local_views):
        super().check(cfg, global_batch=global_batch, local_views=local_views)
        models.parse_spec(cfg.predictor)

    def heads(self, cfg, embed_dim, *, axis_name=None, dtype=None):
        return {"pred": lambda: models.MLP(models.parse_spec(cfg.predictor), axis_name=axis_name, dtype=dtype)}

    def loss_inputs(self, cfg, fwd):
        o1, o2 = fwd.outs
        return o1["pred"], o2["pred"], {"target1": o1["z"], "target2": o2["z"]}
