"""Sample-contrastive losses (Garrido et al. 2023, Prop. 3.2): they repel
pairs of *samples*, i.e. act on the N x N Gram matrix K^T K.

NT-Xent convention (the loss API contract, README "Losses"; as google-research/simclr): the
two views give 2N anchors; each anchor's candidates are the other 2N - 1
embeddings, of which one is its positive and 2N - 2 are negatives; the loss
is the mean over the 2N anchors of -log softmax at the positive. (The paper
analyses the simplified negative set {(x_i, x_j)}; with shared weights and
the same augmentations the two differ in no way that matters, Sec. 3.1.)

Across devices each device scores its own 2n anchors against the gathered
2N candidates, so the logits are [2n, 2N] per device and no work is repeated.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from duality.losses import collectives as cl
from duality.losses import criteria, normalization, validation
from duality.losses.registry import register

SIMCLR_VARIANTS = ("classical", "A", "B")
_TRANSFORMS = {"identity": lambda s: s, "sq": jnp.square, "abs": jnp.abs}


def _normalize(name, z, variant, axis_name):
    """Table 1: which normalisation each SimCLR variant applies (per view)."""
    validation.choice(name, "variant", variant, SIMCLR_VARIANTS)
    if variant == "classical":  # cosine similarity
        return normalization.normalize_embeddings(z)
    if variant == "A":  # centre dimensions, then cosine: VICReg-ctr's scheme
        return normalization.normalize_embeddings(normalization.center_dimensions(z, axis_name))
    # "B": standardise dimensions (eq. 14), VICReg's scheme. Whether a cosine
    # follows is not stated in the paper (NOT FOUND); Table 1 lists no
    # embedding norm for B, so raw dot products are used.
    return normalization.standardize_dimensions(z, axis_name)


def _info_nce(name, z1, z2, *, temperature, axis_name, variant, negatives, positive_in_denominator):
    z1, z2 = validation.pair(name, z1, z2, axis_name)
    validation.positive(name, "temperature", temperature)
    z1 = _normalize(name, z1, variant, axis_name)
    z2 = _normalize(name, z2, variant, axis_name)
    n = z1.shape[0]
    big_n = cl.global_rows(z1, axis_name)
    anchors = jnp.concatenate([z1, z2])  # [2n, M]: local view-1 rows, then view-2 rows
    cands = jnp.concatenate([cl.gather(z1, axis_name), cl.gather(z2, axis_name)])  # [2N, M]
    sim = anchors @ cands.T  # [2n, 2N]

    row = jnp.arange(2 * n)
    g = cl.first_row(n, axis_name) + row % n  # global sample index of each anchor
    first_view = row < n
    own = jnp.where(first_view, g, big_n + g)
    pos = jnp.where(first_view, big_n + g, g)
    col = jnp.arange(2 * big_n)[None, :]
    is_own, is_pos = col == own[:, None], col == pos[:, None]
    is_neg = ~(is_own | is_pos)

    s_pos = jnp.sum(jnp.where(is_pos, sim, 0.0), axis=1)
    # Only the negatives' similarities are squared / made absolute (-sq, -abs):
    # the positive term is unchanged (NOT FOUND in the paper; the natural reading).
    scores = jnp.where(is_pos, sim, _TRANSFORMS[negatives](sim))
    keep = is_neg | is_pos if positive_in_denominator else is_neg
    per_anchor = -s_pos / temperature + jax.nn.logsumexp(scores / temperature, axis=1, where=keep)

    loss = cl.total(jnp.sum(per_anchor), axis_name) / (2 * big_n)
    aux = dict(
        pos_sim=cl.total(jnp.sum(s_pos), axis_name) / (2 * big_n),
        neg_sim=cl.total(jnp.sum(jnp.where(is_neg, sim, 0.0)), axis_name) / float(2 * big_n * (2 * big_n - 2)))
    return cl.per_device((loss, aux), axis_name)


def _doc(kind, negatives):
    return (
        f"{kind} (InfoNCE over 2N anchors, 2N - 2 negatives each){negatives}.\n\n"
        "Args: z1, z2: [N, M] embeddings of two views (rows = samples).\n"
        "  temperature: softmax temperature tau (default 0.1).\n"
        "  variant: normalisation of Table 1: 'classical' (cosine), 'A' (centre\n"
        "    dimensions then cosine) or 'B' (standardise dimensions, eq. 14).\n"
        "  axis_name: mapped axis to take negatives from the global batch.\n"
        "Returns (loss, aux) with aux = {pos_sim, neg_sim}: mean positive and\n"
        "negative similarity after normalisation.")


def _make(name, negatives, positive_in_denominator, kind, note):
    def loss(z1, z2, *, axis_name=None, temperature=0.1, variant="classical"):
        return _info_nce(name, z1, z2, temperature=temperature, axis_name=axis_name, variant=variant,
                         negatives=negatives, positive_in_denominator=positive_in_denominator)

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = _doc(kind, note)
    return register(name)(loss)


simclr = _make("simclr", "identity", True, "SimCLR / NT-Xent (Chen et al. 2020)", "")
dcl = _make("dcl", "identity", False, "DCL, decoupled contrastive learning (Yeh et al. 2021)",
            ": SimCLR with the positive removed from the denominator")
simclr_sq = _make("simclr_sq", "sq", True, "SimCLR-sq (Garrido et al. 2023, Sec. 3)",
                  ": negatives' similarities squared, so they are pushed to orthogonal, not opposite")
simclr_abs = _make("simclr_abs", "abs", True, "SimCLR-abs (Garrido et al. 2023, Sec. 3)",
                   ": negatives' similarities in absolute value (68.71% vs 68.61% on ImageNet)")
dcl_sq = _make("dcl_sq", "sq", False, "DCL-sq (Garrido et al. 2023, Sec. 3)", ": DCL with squared negatives")
dcl_abs = _make("dcl_abs", "abs", False, "DCL-abs (Garrido et al. 2023, Sec. 3)", ": DCL with absolute negatives")


def _to_radius(z, mu, projection):
    unit = normalization.normalize_embeddings(z) * jnp.sqrt(mu)
    if projection == "sphere":
        return unit
    longer = jnp.sum(jnp.square(z), axis=1, keepdims=True) > mu
    return jnp.where(longer, unit, z)


@register("spectral")
def spectral(z1, z2, *, axis_name=None, mu=None, projection="sphere", route="auto"):
    """Spectral contrastive loss (HaoChen et al. 2021).

        L = -2 mean_i <z1_i, z2_i> + mean_{i != j} <z1_i, z2_j>^2

    Its second term is L_c of the cross-view Gram matrix (Prop. 3.2: sample-
    contrastive). `mu`: if given, each embedding is first projected to radius
    sqrt(mu): onto the sphere (`projection="sphere"`, the loss API contract)
    or into the ball (`"ball"`: only longer embeddings are shortened, the
    reading of Sec. 4.2 and of HaoChen et al.'s code, which also divides the
    loss by mu; we do not). None uses z as given. `route` ("auto", "gram", "covariance") picks N x N or
    M x M matrices for the second term (same value).
    Returns (loss, aux) with aux = {pos, neg}: the two means above.
    """
    z1, z2 = validation.pair("spectral", z1, z2, axis_name)
    if mu is not None:
        validation.positive("spectral", "mu", mu)
        validation.choice("spectral", "projection", projection, ("sphere", "ball"))
        z1, z2 = (_to_radius(z, mu, projection) for z in (z1, z2))
    big_n = cl.global_rows(z1, axis_name)
    pos = cl.total(jnp.sum(z1 * z2), axis_name) / big_n
    neg = criteria.offdiag_sq_sample_cross(z1, z2, axis_name, route) / float(big_n * (big_n - 1))
    return cl.per_device((-2.0 * pos + neg, dict(pos=pos, neg=neg)), axis_name)
