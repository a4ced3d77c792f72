"""DINO (Caron et al. 2021): self-distillation from an EMA teacher with a centred, sharpened softmax.

The head is a weight-normalised linear layer of `out_dim` outputs on the
L2-normalised projector output (models.NormalizedLinear). The teacher sees
the two global views; the student all views (multi-crop: data.local_views).
The centre, an EMA of the teacher's mean logits with `center_momentum`,
moves after each step (duality.losses.dino_center_update).
"""
import jax
import jax.numpy as jnp

from duality import losses, models
from duality.methods import register
from duality.methods.base import Method


@register("dino")
class DINO(Method):
    fields = {"out_dim": 65536, "ema_base": 0.996, "center_momentum": 0.9}
    ema_target = True
    multicrop = True
    small = {"out_dim": 16}

    def check(self, cfg, *, global_batch, local_views):
        super().check(cfg, global_batch=global_batch, local_views=local_views)
        self.at_least(cfg, "out_dim", 1, 65536)
        self.within(cfg, "center_momentum", 0.0, 1.0, "--config.method.center_momentum=0.9")

    def heads(self, cfg, embed_dim, *, axis_name=None, dtype=None):
        return {"dino_head": lambda: models.NormalizedLinear(cfg.out_dim)}

    def init_state(self, cfg, params, batch_stats, rng, embed_dim):
        return dict(super().init_state(cfg, params, batch_stats, rng, embed_dim),
                    center=jnp.zeros((cfg.out_dim,), jnp.float32))

    def loss_inputs(self, cfg, fwd):
        (o1, o2), (t1, t2) = fwd.outs, fwd.target_outs
        kw = {"teacher1": t1["dino_head"], "teacher2": t2["dino_head"], "center": fwd.state["center"]}
        if fwd.local_outs:
            kw["extra_views"] = jnp.stack([o["dino_head"] for o in fwd.local_outs])
        return o1["dino_head"], o2["dino_head"], kw

    def after_update(self, cfg, params, batch_stats, fwd, progress, axis_name):
        params, state = super().after_update(cfg, params, batch_stats, fwd, progress, axis_name)
        t1, t2 = (jax.lax.stop_gradient(t["dino_head"]) for t in fwd.target_outs)
        state["center"] = losses.dino_center_update(state["center"], t1, t2, cfg.center_momentum, axis_name)
        return params, state
