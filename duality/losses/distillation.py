"""Losses of methods that learn from a target they do not back-propagate
into: BYOL, SimSiam (a predictor against a stop-gradient target), MoCo (a
momentum encoder and a queue of negatives) and DINO (a centred, sharpened
teacher). Their extra inputs are keyword arguments; the EMA updates and
schedules live with the methods (duality.methods), not here.

Garrido et al. (2023) say these "do not fit perfectly" in their framework
(the mapping is in an appendix we could not read, NOT FOUND); they are here
because users compare against them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from duality.losses import collectives as cl
from duality.losses import normalization, validation
from duality.losses.registry import Example, correlated_pair, register

sg = jax.lax.stop_gradient


def _targets_example(rng, n, m):
    z1, z2 = correlated_pair(rng, n, m)
    return Example(z1, z2, batch=dict(target1=z2 + 0.3 * rng.normal(size=(n, m)),
                                      target2=z1 + 0.3 * rng.normal(size=(n, m))))


def _moco_example(rng, n, m):
    z1, z2 = correlated_pair(rng, n, m)
    return Example(z1, z2, batch=dict(key1=z1 + 0.3 * rng.normal(size=(n, m)), key2=z2 + 0.3 * rng.normal(size=(n, m))),
                   rep=dict(queue=rng.normal(size=(3 * n, m))))


def _dino_example(rng, n, m):
    z1, z2 = correlated_pair(rng, n, m)
    return Example(z1, z2, batch=dict(teacher1=rng.normal(size=(n, m)), teacher2=rng.normal(size=(n, m))),
                   views=dict(extra_views=rng.normal(size=(2, n, m))), rep=dict(center=0.1 * rng.normal(size=(m,))))


def _mean_cos(a, b, axis_name):
    """mean_i cos(a_i, b_i) over the global batch."""
    cos = jnp.sum(normalization.normalize_embeddings(a) * normalization.normalize_embeddings(b), axis=1)
    return cl.total(jnp.sum(cos), axis_name) / cl.global_rows(a, axis_name)


def _targets(name, z1, z2, target1, target2, axis_name):
    z1, z2 = validation.pair(name, z1, z2, axis_name, min_batch=1)
    if target1 is None or target2 is None:
        raise TypeError(f"{name}: needs target1= and target2= (the target branch's embeddings of views 1 and 2)")
    t1 = validation.same_shape(name, "target1", target1, z1, "z1")
    t2 = validation.same_shape(name, "target2", target2, z2, "z2")
    return z1, z2, sg(t1), sg(t2)


@register("byol", inputs=("target1", "target2"), example=_targets_example)
def byol(z1, z2, *, axis_name=None, target1=None, target2=None):
    """BYOL (Grill et al. 2020), symmetrised.

    z1, z2: online *predictions* for views 1 and 2; target1, target2: the
    target (EMA) network's projections of views 1 and 2 (stop-gradient here).
        loss = mean_i [(2 - 2 cos(z1_i, t2_i)) + (2 - 2 cos(z2_i, t1_i))]
    i.e. the sum of BYOL's loss and its view-swapped twin, in [0, 8].
    Returns (loss, {cos}) with cos the mean of the two cosine similarities.
    """
    z1, z2, t1, t2 = _targets("byol", z1, z2, target1, target2, axis_name)
    cos = 0.5 * (_mean_cos(z1, t2, axis_name) + _mean_cos(z2, t1, axis_name))
    return cl.per_device((4.0 - 4.0 * cos, dict(cos=cos)), axis_name)


@register("simsiam", inputs=("target1", "target2"), example=_targets_example)
def simsiam(z1, z2, *, axis_name=None, target1=None, target2=None):
    """SimSiam (Chen & He 2021).

    z1, z2: predictor outputs p1, p2; target1, target2: projector outputs of
    views 1 and 2 (stop-gradient here).
        loss = -(mean cos(p1, t2) + mean cos(p2, t1)) / 2, in [-1, 1].
    Returns (loss, {cos}).
    """
    z1, z2, t1, t2 = _targets("simsiam", z1, z2, target1, target2, axis_name)
    cos = 0.5 * (_mean_cos(z1, t2, axis_name) + _mean_cos(z2, t1, axis_name))
    return cl.per_device((-cos, dict(cos=cos)), axis_name)


def _info_nce_keys(q, k, negatives, temperature, axis_name, in_batch):
    """Mean over the global batch of -log softmax of q_i . k_i among {k_i} U negatives."""
    q = normalization.normalize_embeddings(q)
    k = normalization.normalize_embeddings(k)
    l_pos = jnp.sum(q * k, axis=1) / temperature
    if in_batch:  # MoCo v3: the other samples' keys are the negatives
        logits = q @ cl.gather(k, axis_name).T / temperature  # [n, N] (includes the positive)
    else:
        logits = jnp.concatenate([l_pos[:, None], q @ negatives.T / temperature], axis=1)
    per = jax.nn.logsumexp(logits, axis=1) - l_pos
    return cl.total(jnp.sum(per), axis_name) / cl.global_rows(q, axis_name)


@register("moco", inputs=("key1", "key2", "queue"), example=_moco_example)
def moco(z1, z2, *, axis_name=None, key1=None, key2=None, queue=None, temperature=0.2, symmetric=False):
    """MoCo InfoNCE (He et al. 2020; v2 defaults).

    z1, z2: the query encoder's embeddings of views 1 and 2; key1, key2: the
    momentum encoder's embeddings of views 1 and 2 (stop-gradient here);
    queue: [K, M] negatives (stop-gradient), e.g. from `losses.enqueue`.
    Each query is scored against its key (the other view) and the negatives;
    loss = mean_i -log softmax at the key, with cosine similarities / tau.
    By default only q1 vs k2 is scored, as in MoCo v2; with `symmetric` both
    directions are averaged (q1 vs k2, q2 vs k1; "MoCo v2+" reimplementations). With queue=None the negatives are the
    other keys of the global batch (MoCo v3 without its 2 tau factor).
    Returns (loss, {}).
    """
    z1, z2 = validation.pair("moco", z1, z2, axis_name, min_batch=1 if queue is not None else 2)
    if key1 is None or key2 is None:
        raise TypeError("moco: needs key1= and key2= (the momentum encoder's embeddings of views 1 and 2)")
    validation.positive("moco", "temperature", temperature)
    k1 = sg(validation.same_shape("moco", "key1", key1, z1, "z1"))
    k2 = sg(validation.same_shape("moco", "key2", key2, z2, "z2"))
    neg = None
    if queue is not None:
        neg = sg(validation.matrix("moco", "queue", queue))
        if neg.shape[1] != z1.shape[1]:
            raise ValueError(f"moco: queue rows have dim {neg.shape[1]}, embeddings have {z1.shape[1]}")
        neg = normalization.normalize_embeddings(neg)
    loss = _info_nce_keys(z1, k2, neg, temperature, axis_name, queue is None)
    if symmetric:
        loss = 0.5 * (loss + _info_nce_keys(z2, k1, neg, temperature, axis_name, queue is None))
    return cl.per_device((loss, {}), axis_name)


@register("dino", inputs=("teacher1", "teacher2", "center", "extra_views"), example=_dino_example)
def dino(z1, z2, *, axis_name=None, teacher1=None, teacher2=None, center=None,
         student_temperature=0.1, teacher_temperature=0.04, extra_views=None):
    """DINO (Caron et al. 2021) cross-entropy between teacher and student.

    z1, z2: the student head's logits [N, K] for the two global views;
    teacher1, teacher2: the teacher's logits for them (stop-gradient here);
    center: [K] running centre of teacher logits (see `dino_center_update`);
    extra_views: optional [V, N, K] student logits of local crops.
    Teacher targets are softmax((t - center) / teacher_temperature) (centring
    and sharpening); each is predicted by every student view except its own,
    loss = mean over those pairs of mean_i -sum_k p_teacher log p_student.
    Returns (loss, {teacher_entropy}).
    """
    z1, z2 = validation.pair("dino", z1, z2, axis_name, min_batch=1)
    validation.positive("dino", "student_temperature", student_temperature)
    validation.positive("dino", "teacher_temperature", teacher_temperature)
    if teacher1 is None or teacher2 is None or center is None:
        raise TypeError("dino: needs teacher1=, teacher2= (teacher logits of the global views) and center=")
    t1 = validation.same_shape("dino", "teacher1", teacher1, z1, "z1")
    t2 = validation.same_shape("dino", "teacher2", teacher2, z2, "z2")
    c = validation.as_float32("dino", "center", center)
    if c.shape != (z1.shape[1],):
        raise ValueError(f"dino: center must have shape ({z1.shape[1]},), got {tuple(c.shape)}")
    students = [jax.nn.log_softmax(v / student_temperature, axis=1)
                for v in validation.all_views("dino", z1, z2, extra_views)]
    teachers = [jax.nn.softmax(sg(t - c) / teacher_temperature, axis=1) for t in (t1, t2)]
    n_big = cl.global_rows(z1, axis_name)
    total, pairs = 0.0, 0
    for ti, p in enumerate(teachers):
        for si, logp in enumerate(students):
            if si != ti:
                total = total + cl.total(-jnp.sum(p * logp), axis_name) / n_big
                pairs += 1
    ent = sum(cl.total(-jnp.sum(p * jnp.log(jnp.maximum(p, 1e-30))), axis_name) for p in teachers) / (2 * n_big)
    return cl.per_device((total / pairs, dict(teacher_entropy=ent)), axis_name)


def dino_center_update(center, teacher1, teacher2, momentum=0.9, axis_name=None):
    """EMA of the teacher logits' mean over the *global* batch (both views).

    center <- momentum * center + (1 - momentum) * mean(teacher logits).
    """
    t = sg(jnp.concatenate([validation.matrix("dino_center_update", "teacher1", teacher1),
                            validation.matrix("dino_center_update", "teacher2", teacher2)]))
    return momentum * center + (1.0 - momentum) * cl.batch_mean(t, axis_name)
