"""SwAV (Caron et al. 2020): swapped prediction of online cluster codes."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from duality.losses import collectives as cl
from duality.losses import normalization, validation
from duality.losses.registry import Example, correlated_pair, register


def sinkhorn(scores, epsilon=0.05, iters=3, axis_name=None, queue_scores=None):
    """Equipartitioned soft codes Q for `scores` [n, K] (stop-gradient).

    Sinkhorn-Knopp on exp(scores / epsilon) over the *global* batch: the
    row sums over samples are all-reduced, so every prototype gets 1/K of the
    global batch, and every sample a distribution over prototypes. Rows of a
    replicated `queue_scores` [Q, K] join the transport problem once (not once
    per device). Returns codes for the `scores` rows only, rows summing to 1.
    """
    scores = jax.lax.stop_gradient(scores)
    n_big = cl.global_rows(scores, axis_name)
    qs = None if queue_scores is None else jax.lax.stop_gradient(queue_scores)
    # Subtracting the global max changes nothing after normalisation and keeps exp finite.
    top = cl.global_max(jnp.max(scores), axis_name)
    if qs is not None:
        top = jnp.maximum(top, jnp.max(qs))
    q = jnp.exp((scores - top) / epsilon)
    qq = None if qs is None else jnp.exp((qs - top) / epsilon)
    b = n_big + (0 if qq is None else qq.shape[0])
    k = scores.shape[1]

    def col_sums(q, qq):  # sum over samples, per prototype: [K]
        s = cl.batch_sum(q, axis_name)
        return s if qq is None else s + jnp.sum(qq, axis=0)

    def grand(q, qq):
        s = cl.total(jnp.sum(q), axis_name)
        return s if qq is None else s + jnp.sum(qq)

    g = grand(q, qq)
    q, qq = q / g, (None if qq is None else qq / g)
    for _ in range(iters):
        s = col_sums(q, qq) * k
        q, qq = q / s, (None if qq is None else qq / s)
        q = q / (jnp.sum(q, axis=1, keepdims=True) * b)
        qq = None if qq is None else qq / (jnp.sum(qq, axis=1, keepdims=True) * b)
    return q * b


def _swav_example(rng, n, m):
    z1, z2 = correlated_pair(rng, n, m)
    return Example(z1, z2, views=dict(extra_views=rng.normal(size=(2, n, m))),
                   rep=dict(queue=rng.normal(size=(2 * n, m))),
                   params=dict(prototypes=rng.normal(size=(10, m))))


@register("swav", inputs=("prototypes", "queue", "extra_views"), example=_swav_example)
def swav(z1, z2, *, axis_name=None, prototypes=None, temperature=0.1, epsilon=0.05,
         sinkhorn_iters=3, queue=None, extra_views=None):
    """SwAV swapped-prediction loss.

    z1, z2: projector outputs [N, M] of the two global views; prototypes:
    [K, M] (a trainable parameter: gradients flow into it); queue: optional
    [Q, M] stored embeddings whose scores join the Sinkhorn problem (SwAV's
    small-batch queue); extra_views: optional [V, N, M] multi-crop views,
    which predict codes but never provide them. Embeddings and prototypes are
    L2-normalised here, so the gradient reaching `prototypes` is tangent to
    the sphere (SwAV renormalises the weights every step; duality.methods
    does too). Codes q = sinkhorn(scores / epsilon) over the global batch;
    each view predicts the other global views' codes with
    softmax(scores / temperature):
        loss = mean over (code view t, predicting view v != t) of
               mean_i -sum_k q_t,ik log p_v,ik.
    Returns (loss, {code_entropy}).
    """
    z1, z2 = validation.pair("swav", z1, z2, axis_name, min_batch=1)
    if prototypes is None:
        raise TypeError("swav: needs prototypes= (a [K, M] trainable matrix)")
    c = validation.matrix("swav", "prototypes", prototypes)
    if c.shape[1] != z1.shape[1]:
        raise ValueError(f"swav: prototypes are [K, {c.shape[1]}], embeddings have dim {z1.shape[1]}")
    validation.positive("swav", "temperature", temperature)
    validation.positive("swav", "epsilon", epsilon)
    validation.count("swav", "sinkhorn_iters", sinkhorn_iters)
    c = normalization.normalize_embeddings(c)
    scores = [normalization.normalize_embeddings(v) @ c.T for v in validation.all_views("swav", z1, z2, extra_views)]
    q_scores = None
    if queue is not None:
        qz = validation.matrix("swav", "queue", queue)
        q_scores = normalization.normalize_embeddings(jax.lax.stop_gradient(qz)) @ c.T
    codes = [sinkhorn(s, epsilon, sinkhorn_iters, axis_name, q_scores) for s in scores[:2]]
    n_big = cl.global_rows(z1, axis_name)
    logp = [jax.nn.log_softmax(s / temperature, axis=1) for s in scores]
    total, pairs = 0.0, 0
    for ti, q in enumerate(codes):
        for vi, lp in enumerate(logp):
            if vi != ti:
                total = total + cl.total(-jnp.sum(q * lp), axis_name) / n_big
                pairs += 1
    ent = sum(cl.total(-jnp.sum(q * jnp.log(jnp.maximum(q, 1e-30))), axis_name) for q in codes) / (2 * n_big)
    return cl.per_device((total / pairs, dict(code_entropy=ent)), axis_name)
