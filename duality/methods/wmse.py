"""W-MSE (Ermolov et al. 2021): whitening, then MSE between the views' whitened embeddings.

Its loss draws the sub-batch split from a key shared by every device (so
all devices whiten the same sub-batches), a new one each step.
"""
from duality.methods import register
from duality.methods.base import Method


@register("wmse")
class WMSE(Method):
    small = {"loss": {"w_size": 8}}
    def loss_inputs(self, cfg, fwd):
        return fwd.outs[0]["z"], fwd.outs[1]["z"], {"rng": fwd.rng}
