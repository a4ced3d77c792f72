"""The normalisations of Table 1 (Garrido et al. 2023, Sec. 4.2).

Embedding normalisation puts each sample on the unit sphere (SimCLR, TCR);
dimension normalisation fixes the norm of each dimension over the batch
(VICReg through its variance term, Barlow Twins, SimCLR variant "B" through
eq. 14). Statistics are over the global batch when `axis_name` is given.

All three are safe on zero vectors and collapsed batches: norms are
floored at `eps` before dividing, so values and gradients stay finite
(the gradient of ||x|| at x = 0 is undefined; a floor under x.x is not).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from duality.losses import collectives as cl

EPS = 1e-12


def normalize_embeddings(z, eps: float = EPS):
    """Each row (embedding, K_.i) scaled to unit L2 norm."""
    return z * lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(z), axis=-1, keepdims=True), eps))


def center_dimensions(z, axis_name=None):
    """Each column (dimension, K_j.) shifted to zero mean over the global batch."""
    return z - cl.batch_mean(z, axis_name)


def standardize_dimensions(z, axis_name=None, eps: float = EPS):
    """Eq. 14: centre each dimension, then scale it to norm sqrt(N / M).

    Afterwards ||K||_F^2 = N, the same total as N unit-norm embeddings, which
    is what makes SimCLR variant "B" comparable with the cosine version.
    (The paper indexes eq. 14 as K_.i, i in [1..M]; it is the M rows of K,
    i.e. the columns of z, that are rescaled.)
    """
    n, m = cl.global_rows(z, axis_name), z.shape[1]
    zc = center_dimensions(z, axis_name)
    sq_norm = cl.batch_sum(jnp.square(zc), axis_name)  # ||K_j.||^2, [M]
    return zc * lax.rsqrt(jnp.maximum(sq_norm, eps)) * jnp.sqrt(n / m)
