"""Training-health signals, computed inside the train step and logged with the loss terms.

A run can print a falling loss and still not learn: the weights barely move
(an optimiser whose steps are too small), or the embeddings collapse onto a
few directions. Two signals make either visible at a glance in
`training_curves.png`:

* drift: per top-level module (encoder, projector, predictor, heads), the
  relative Frobenius distance of its weight tensors from their values at
  initialisation, ||W - W0||_F / ||W0||_F, and the norm ratio
  ||W||_F / ||W0||_F. Only weights (rank >= 2) count: biases and BatchNorm
  parameters start at 0 or 1 and would make the ratio meaningless. The
  initial values are recomputed from the run's seed, so a resumed run reports
  the same numbers and checkpoints do not carry a second copy of the model.
* batch RankMe of z (Garrido et al. 2023b): exp of the entropy of the
  normalised singular values of the global batch's projector outputs
  (uncentred, as RankMe is defined), from the eigenvalues of the smaller of
  z z^T and z^T z. It lies in [1, min(N, M)]; a collapsing run drops towards 1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from duality.losses import collectives as cl

# Top-level model modules -> the names the metrics use.
GROUPS = {"backbone": "encoder", "proj": "projector", "pred": "predictor", "prototypes": "prototypes",
          "dino_head": "dino_head"}
EPS = 1e-12  # added to the normalised singular values, as analysis/embedding.effective_rank does


def _weights(tree):
    return [x for x in jax.tree.leaves(tree) if x.ndim >= 2]


def drift(params, initial) -> dict:
    """{"drift_<group>": ||W - W0|| / ||W0||, "norm_<group>": ||W|| / ||W0||} over each module's weights."""
    out = {}
    for key, name in GROUPS.items():
        if key not in params or not _weights(params[key]):
            continue
        w, w0 = _weights(params[key]), _weights(initial[key])
        sq0 = sum(jnp.sum(jnp.square(b.astype(jnp.float32))) for b in w0)
        sq_d = sum(jnp.sum(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32))) for a, b in zip(w, w0))
        sq = sum(jnp.sum(jnp.square(a.astype(jnp.float32))) for a in w)
        denom = jnp.sqrt(jnp.maximum(sq0, 1e-30))
        out[f"drift_{name}"] = jnp.sqrt(sq_d) / denom
        out[f"norm_{name}"] = jnp.sqrt(sq) / denom
    return out


def rankme(z, axis_name=None):
    """RankMe of the global batch of `z` ([n, M] per device), the same value on every device."""
    z = z.astype(jnp.float32)
    n_global, m = cl.global_rows(z, axis_name), z.shape[-1]
    if m <= n_global:  # M x M uncentred second moment, summed over devices
        gram = cl.total(jax.lax.stop_gradient(z).T @ jax.lax.stop_gradient(z), axis_name)
    else:  # N x N Gram matrix of the gathered rows
        zg = cl.gather_replicated(z, axis_name)
        gram = zg @ zg.T
    eig = jnp.linalg.eigvalsh(gram)
    s = jnp.sqrt(jnp.maximum(eig, 0.0))
    p = s / jnp.maximum(jnp.sum(s), 1e-30) + EPS
    return jnp.exp(-jnp.sum(p * jnp.log(p)))
