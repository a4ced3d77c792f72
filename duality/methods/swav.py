"""SwAV (Caron et al. 2020): swapped prediction of Sinkhorn codes over learnt prototypes.

The prototypes are a head (models.Prototypes, `n_prototypes` rows on the
unit sphere), renormalised after every update and frozen for the first
`freeze_prototypes_steps` steps (their gradient is zeroed), as in the
reference. With `queue_size` > 0 the codes of the batch are computed together
with the queue's past embeddings, from `queue_start_step` on, once the queue
holds only real embeddings.
"""
import jax
import jax.numpy as jnp

from duality import losses, models
from duality.methods import register
from duality.methods.base import Method


@register("swav")
class SwAV(Method):
    fields = {"n_prototypes": 3000, "queue_size": 0, "queue_start_step": 0, "freeze_prototypes_steps": 313}
    multicrop = True
    small = {"n_prototypes": 10}

    def check(self, cfg, *, global_batch, local_views):
        super().check(cfg, global_batch=global_batch, local_views=local_views)
        self.at_least(cfg, "n_prototypes", 1, 3000)
        q = cfg.queue_size
        if q and cfg.queue_start_step * 2 * global_batch < q:
            need = -(-q // (2 * global_batch))
            raise ValueError(f"swav: the {q}-row queue fills after {need} steps of {global_batch} x 2 embeddings; "
                             f"set method.queue_start_step >= {need} so that empty rows never enter Sinkhorn")

    def heads(self, cfg, embed_dim, *, axis_name=None, dtype=None):
        return {"prototypes": lambda: models.Prototypes(cfg.n_prototypes)}

    def init_state(self, cfg, params, batch_stats, rng, embed_dim):
        return {"queue": jnp.zeros((cfg.queue_size, embed_dim), jnp.float32)} if cfg.queue_size else {}

    def loss_inputs(self, cfg, fwd):
        o1, o2 = fwd.outs
        kw = {"prototypes": o1["prototypes"]}
        if fwd.local_outs:
            kw["extra_views"] = jnp.stack([o["z"] for o in fwd.local_outs])
        return o1["z"], o2["z"], kw

    def loss(self, cfg, a, b, inputs, fwd, axis_name):
        """The queue joins the codes only once it holds real embeddings (from queue_start_step)."""
        hp = dict(cfg.loss)
        if "queue" not in fwd.state:
            return self.loss_fn(a, b, axis_name=axis_name, **inputs, **hp)
        return jax.lax.cond(fwd.step >= cfg.queue_start_step,
                            lambda: self.loss_fn(a, b, axis_name=axis_name, queue=fwd.state["queue"], **inputs, **hp),
                            lambda: self.loss_fn(a, b, axis_name=axis_name, **inputs, **hp))

    def grads(self, cfg, grads, step):
        frozen = step < cfg.freeze_prototypes_steps
        return dict(grads, prototypes=jax.tree.map(lambda g: jnp.where(frozen, 0.0, g), grads["prototypes"]))

    def after_update(self, cfg, params, batch_stats, fwd, progress, axis_name):
        params = dict(params, prototypes={"w": losses.normalize_embeddings(params["prototypes"]["w"])})
        state = dict(fwd.state)
        if "queue" in state:
            z = jnp.concatenate([fwd.outs[0]["z"], fwd.outs[1]["z"]])
            state["queue"] = losses.enqueue(state["queue"], jax.lax.stop_gradient(z), axis_name)
        return params, state
