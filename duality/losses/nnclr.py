"""NNCLR (Dwibedi et al. 2021): InfoNCE with each embedding's nearest neighbour as its positive's anchor.

For view 1, every embedding is replaced by its nearest neighbour (cosine) in
a support set of past embeddings, and that neighbour must pick out the same
sample's view-2 embedding among the global batch's view-2 embeddings; the
same with the views swapped, averaged:

    L = 1/(2N) sum_i [ -log softmax_k(<NN(q1_i), z2_k> / tau)[i]
                       -log softmax_k(<NN(q2_i), z1_k> / tau)[i] ]

with all vectors L2-normalised, k over the N global rows. The neighbours
carry no gradient (a lookup); the queries q default to z itself, and with a
predictor (the paper's recipe) z are the predictions and q the projections.
Across devices each device scores its own rows against the gathered batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from duality.losses import collectives as cl
from duality.losses import normalization, validation
from duality.losses.registry import Example, correlated_pair, register


def nearest_neighbors(query, support):
    """Each query row's nearest support row by cosine, as a unit vector; no gradient flows through."""
    q = normalization.normalize_embeddings(jax.lax.stop_gradient(query))
    s = normalization.normalize_embeddings(jax.lax.stop_gradient(support))
    return s[jnp.argmax(q @ s.T, axis=1)]


def _example(rng, n, m):
    z1, z2 = correlated_pair(rng, n, m)
    return Example(z1, z2, batch=dict(query1=z1 + 0.3 * rng.normal(size=(n, m)),
                                      query2=z2 + 0.3 * rng.normal(size=(n, m))),
                   rep=dict(support=rng.normal(size=(3 * n, m))))


@register("nnclr", inputs=("support", "query1", "query2"), example=_example)
def nnclr(z1, z2, *, axis_name=None, support=None, query1=None, query2=None, temperature=0.1):
    """NNCLR loss (see the module docstring).

    z1, z2: [n, M] embeddings of the two views (the predictor's outputs in the paper's recipe).
    support: [Q, M] past embeddings (a queue, replicated on every device); required.
    query1, query2: [n, M] what looks up the neighbours (default z1, z2; the projections with a predictor).
    temperature: tau (the paper's 0.1).
    Returns (loss, aux) with aux = {pos_sim: mean cosine of each neighbour with its positive,
    nn_sim: mean cosine of each query with its neighbour (how close the support set is)}.
    """
    z1, z2 = validation.pair("nnclr", z1, z2, axis_name)
    validation.positive("nnclr", "temperature", temperature)
    if support is None:
        raise ValueError("nnclr: needs support=<[Q, M] past embeddings> (a queue) to find neighbours in")
    support = validation.matrix("nnclr", "support", support)
    if support.shape[1] != z1.shape[1]:
        raise ValueError(f"nnclr: support rows have {support.shape[1]} dims, the embeddings {z1.shape[1]}")
    q1 = z1 if query1 is None else validation.same_shape("nnclr", "query1", query1, z1, "z1")
    q2 = z2 if query2 is None else validation.same_shape("nnclr", "query2", query2, z2, "z2")
    a1, a2 = normalization.normalize_embeddings(z1), normalization.normalize_embeddings(z2)
    big_n = cl.global_rows(z1, axis_name)
    rows = cl.first_row(z1.shape[0], axis_name) + jnp.arange(z1.shape[0])  # global index of each local row
    total, pos, close = 0.0, 0.0, 0.0
    for q, own, other in ((q1, a1, a2), (q2, a2, a1)):
        nn = nearest_neighbors(q, support)
        logits = nn @ cl.gather(other, axis_name).T / temperature  # [n, N]
        s_pos = jnp.take_along_axis(logits, rows[:, None], axis=1)[:, 0]
        total = total + jnp.sum(jax.nn.logsumexp(logits, axis=1) - s_pos)
        pos = pos + jnp.sum(s_pos) * temperature
        close = close + jnp.sum(nn * normalization.normalize_embeddings(jax.lax.stop_gradient(q)))
    scale = 1.0 / (2 * big_n)
    aux = dict(pos_sim=cl.total(pos, axis_name) * scale, nn_sim=cl.total(close, axis_name) * scale)
    return cl.per_device((cl.total(total, axis_name) * scale, aux), axis_name)
