"""Dimension-contrastive losses (Garrido et al. 2023, Prop. 3.2): they
decorrelate pairs of *dimensions*, i.e. act on the M x M matrix K K^T.

When the global batch N is smaller than the embedding dimension M, the
Frobenius terms are computed through N x N Gram matrices (`route="auto"`,
see criteria.py): the identity behind Theorem 3.3 makes this exact, and at
N = 512, M = 8192 it is an order of magnitude faster (benchmarks/losses.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from duality.losses import collectives as cl
from duality.losses import criteria, normalization, validation
from duality.losses.registry import Example, correlated_pair, register


# --------------------------------------------------------------------- VICReg

def _invariance(z1, z2, axis_name):
    """Mean squared error over all N * M entries (VICReg's `inv`)."""
    return cl.total(jnp.sum(jnp.square(z1 - z2)), axis_name) / float(cl.global_rows(z1, axis_name) * z1.shape[1])


def _variance_hinge(zc, axis_name, gamma, eps):
    """mean_j relu(gamma - sqrt(Var_j + eps)), Var with N - 1 (VICReg's v)."""
    var = cl.batch_sum(jnp.square(zc), axis_name) / (cl.global_rows(zc, axis_name) - 1)
    return jnp.mean(jax.nn.relu(gamma - jnp.sqrt(var + eps)))


def _cov_sq(zc, axis_name, route):
    """VICReg's c: sum_{i != j} C_ij^2 / M with C = zc^T zc / (N - 1)."""
    n, m = cl.global_rows(zc, axis_name), zc.shape[1]
    return criteria.offdiag_sq_feature_cross(zc, zc, axis_name, route) / float((n - 1) ** 2 * m)


def _cov_exp(zc, axis_name, temperature):
    """Eq. 11-12: c_exp = (1/M) sum_i logsumexp_{j != i} (C_ij / tau).

    One log-sum-exp per row i, then a mean over rows. C is M x M here (no
    Gram route: a log-sum-exp does not factor through K^T K).
    """
    n, m = cl.global_rows(zc, axis_name), zc.shape[1]
    c = cl.total(zc.T @ zc, axis_name) / (n - 1)
    off = ~jnp.eye(m, dtype=bool)
    return jnp.mean(jax.nn.logsumexp(c / temperature, axis=1, where=off))


def _vicreg_terms(name, z1, z2, axis_name, gamma, eps, cov_fn):
    z1, z2 = validation.pair(name, z1, z2, axis_name)
    inv = _invariance(z1, z2, axis_name)
    zc1 = normalization.center_dimensions(z1, axis_name)
    zc2 = normalization.center_dimensions(z2, axis_name)
    var = 0.5 * (_variance_hinge(zc1, axis_name, gamma, eps) + _variance_hinge(zc2, axis_name, gamma, eps))
    cov = cov_fn(zc1) + cov_fn(zc2)
    return inv, var, cov


def _check_vicreg(name, sim_coeff, std_coeff, cov_coeff, gamma, eps):
    for arg, v in (("sim_coeff", sim_coeff), ("std_coeff", std_coeff), ("cov_coeff", cov_coeff), ("eps", eps)):
        validation.non_negative(name, arg, v)
    validation.positive(name, "gamma", gamma)


def _weighted(inv, var, cov, sim_coeff, std_coeff, cov_coeff, axis_name):
    loss = sim_coeff * inv + std_coeff * var + cov_coeff * cov
    return cl.per_device((loss, dict(inv=inv, var=var, cov=cov)), axis_name)


@register("vicreg")
def vicreg(z1, z2, *, axis_name=None, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0,
           gamma=1.0, eps=1e-4, route="auto"):
    """VICReg (Bardes et al. 2022), exactly as the official implementation.

      inv = mean((z1 - z2)^2) over N * M entries
      var = (v(z1) + v(z2)) / 2,  v(z) = mean_j relu(gamma - sqrt(Var_j(z) + eps))
      cov = c(z1) + c(z2),        c(z) = sum_{i != j} C(z)_ij^2 / M,
                                  C(z) = centred z^T z / (N - 1)
      loss = sim_coeff * inv + std_coeff * var + cov_coeff * cov

    c is L_nc of the centred embeddings (Garrido et al. eq. 8); `route`
    ("auto", "gram", "covariance") computes it through N x N Gram matrices
    when N < M. Returns (loss, {inv, var, cov}), terms unweighted.
    """
    _check_vicreg("vicreg", sim_coeff, std_coeff, cov_coeff, gamma, eps)

    def cov_fn(zc):
        return _cov_sq(zc, axis_name, route)

    inv, var, cov = _vicreg_terms("vicreg", z1, z2, axis_name, gamma, eps, cov_fn)
    return _weighted(inv, var, cov, sim_coeff, std_coeff, cov_coeff, axis_name)


@register("vicreg_exp")
def vicreg_exp(z1, z2, *, axis_name=None, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0,
               temperature=0.1, gamma=1.0, eps=1e-4):
    """VICReg-exp (Garrido et al. 2023, eq. 11-12): VICReg with its covariance
    term replaced by a log-sum-exp per row,

      cov = c_exp(z1) + c_exp(z2),  c_exp(z) = (1/M) sum_i log sum_{j != i} exp(C_ij / tau),

    the InfoNCE-style repulsion of SimCLR applied to dimensions. inv and var
    are VICReg's. The paper's tau and coefficients are in an appendix we could
    not read (NOT FOUND): tau = 0.1 (SimCLR's default) and VICReg's
    coefficients are our defaults. Returns (loss, {inv, var, cov}).
    """
    validation.positive("vicreg_exp", "temperature", temperature)
    _check_vicreg("vicreg_exp", sim_coeff, std_coeff, cov_coeff, gamma, eps)
    if validation.matrix("vicreg_exp", "z1", z1).shape[1] < 2:
        raise ValueError("vicreg_exp: needs an embedding dimension of at least 2 (the log-sum-exp is over "
                         "off-diagonal covariances, and M = 1 has none)")

    def cov_fn(zc):
        return _cov_exp(zc, axis_name, temperature)

    inv, var, cov = _vicreg_terms("vicreg_exp", z1, z2, axis_name, gamma, eps, cov_fn)
    return _weighted(inv, var, cov, sim_coeff, std_coeff, cov_coeff, axis_name)


def _ctr_variance(zs, gamma, eps, axis_name):
    """v(K^T): per-sample variance across its M dimensions (M - 1), hinge, mean over global N."""
    var = jnp.sum(jnp.square(zs), axis=1) / (zs.shape[1] - 1)
    return cl.total(jnp.sum(jax.nn.relu(gamma - jnp.sqrt(var + eps))), axis_name) / cl.global_rows(zs, axis_name)


def _ctr_cov_exp(zs, temperature, axis_name):
    """c_exp(K^T): (1/N) sum_i logsumexp_{j != i} (G_ij / tau), G = zs zs^T / (M - 1), N x N."""
    n, m = zs.shape
    g = zs @ cl.gather(zs, axis_name).T / (m - 1)  # [n, N]: local rows of the global Gram
    cols = jnp.arange(g.shape[1])[None, :]
    own = cl.first_row(n, axis_name) + jnp.arange(n)[:, None]
    lse = jax.nn.logsumexp(g / temperature, axis=1, where=cols != own)
    return cl.total(jnp.sum(lse), axis_name) / cl.global_rows(zs, axis_name)


@register("vicreg_ctr")
def vicreg_ctr(z1, z2, *, axis_name=None, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0,
               temperature=0.1, gamma=1.0, eps=1e-4):
    """VICReg-ctr (Garrido et al. 2023, eq. 13): VICReg-exp with K transposed
    before the variance and covariance terms, which makes it sample-contrastive.

    On z.T the "batch" is the M dimensions and the "features" are the N
    samples: each embedding is centred over its own dimensions, its variance
    across them (M - 1) is hinged at gamma (so the variance term now controls
    embedding norms), and c_exp acts on the N x N Gram matrix of samples with
    one log-sum-exp per sample, the repulsion of DCL. By construction
    `vicreg_ctr(z1, z2)` equals `vicreg_exp(z1.T, z2.T)` on one device; here
    the N x N Gram is split across devices by rows, so it scales with the
    global batch. The paper's normalisations and coefficients for this
    variant are NOT FOUND; ours are the transpose of vicreg_exp's exactly.
    Returns (loss, {inv, var, cov}).
    """
    validation.positive("vicreg_ctr", "temperature", temperature)
    _check_vicreg("vicreg_ctr", sim_coeff, std_coeff, cov_coeff, gamma, eps)
    z1, z2 = validation.pair("vicreg_ctr", z1, z2, axis_name)
    if z1.shape[1] < 2:
        raise ValueError("vicreg_ctr: needs an embedding dimension of at least 2 (it takes variances across dimensions)")
    inv = _invariance(z1, z2, axis_name)
    zs1 = z1 - jnp.mean(z1, axis=1, keepdims=True)  # centre each sample over its dimensions
    zs2 = z2 - jnp.mean(z2, axis=1, keepdims=True)
    var = 0.5 * (_ctr_variance(zs1, gamma, eps, axis_name) + _ctr_variance(zs2, gamma, eps, axis_name))
    cov = _ctr_cov_exp(zs1, temperature, axis_name) + _ctr_cov_exp(zs2, temperature, axis_name)
    return _weighted(inv, var, cov, sim_coeff, std_coeff, cov_coeff, axis_name)


# --------------------------------------------------------------- Barlow Twins

@register("barlow_twins")
def barlow_twins(z1, z2, *, axis_name=None, lambd=0.0051, eps=1e-5, route="auto"):
    """Barlow Twins (Zbontar et al. 2021), as the official implementation.

    Each dimension is standardised over the global batch (biased variance,
    eps = 1e-5: BatchNorm1d without affine), C = z1n^T z2n / N, and
        loss = sum_j (1 - C_jj)^2 + lambd * sum_{i != j} C_ij^2.
    The off-diagonal term goes through N x N Gram matrices when N < M
    (`route`). Returns (loss, {on_diag, off_diag}), terms unweighted.
    """
    z1, z2 = validation.pair("barlow_twins", z1, z2, axis_name)
    validation.non_negative("barlow_twins", "lambd", lambd)
    validation.non_negative("barlow_twins", "eps", eps)
    n = cl.global_rows(z1, axis_name)

    def standardize(z):
        zc = normalization.center_dimensions(z, axis_name)
        var = cl.batch_sum(jnp.square(zc), axis_name) / n
        return zc * jax.lax.rsqrt(var + eps)

    a, b = standardize(z1), standardize(z2)
    diag = cl.batch_sum(a * b, axis_name) / n  # C_jj
    on = jnp.sum(jnp.square(1.0 - diag))
    off = criteria.offdiag_sq_feature_cross(a, b, axis_name, route) / float(n * n)
    return cl.per_device((on + lambd * off, dict(on_diag=on, off_diag=off)), axis_name)


# ------------------------------------------------------------------------ TCR

def _coding_rate(z, eps_sq, axis_name, route):
    """R(Z) = 1/2 logdet(I_M + M / (N eps^2) K K^T) = 1/2 logdet(I_N + M / (N eps^2) K^T K).

    Sylvester's determinant identity is the same duality as Theorem 3.3: the
    N x N route is exact and cheaper when N < M.
    """
    n, m = cl.global_rows(z, axis_name), z.shape[1]
    r = criteria.resolve_route(route, n, m, "covariance")
    if r == "covariance":
        mat = cl.total(z.T @ z, axis_name)
    else:
        zg = cl.gather(z, axis_name)
        mat = zg @ zg.T
    scale = m / (n * eps_sq)
    chol = jnp.linalg.cholesky(jnp.eye(mat.shape[0], dtype=mat.dtype) + scale * mat)
    return jnp.sum(jnp.log(jnp.diagonal(chol)))  # 1/2 logdet = sum log diag(L)


@register("tcr")
def tcr(z1, z2, *, axis_name=None, eps_sq=0.2, inv_coeff=200.0, route="auto"):
    """Total coding rate (Li et al. 2022, as used in EMP-SSL / NMCE).

    Embeddings are L2-normalised (Garrido et al. Sec. 4.2: TCR normalises
    embeddings although it is dimension-contrastive), then
        loss = -(R(z1) + R(z2)) / 2 + inv_coeff * (1 - mean_i cos(z1_i, z2_i)),
        R(z) = 1/2 logdet(I + M / (N eps_sq) z^T z).
    The exact form and constants used by Garrido et al. are NOT FOUND; eps_sq
    = 0.2 and inv_coeff = 200 follow EMP-SSL. Returns (loss, {tcr, inv}) with
    tcr the mean coding rate and inv = 1 - mean cosine similarity.
    """
    validation.positive("tcr", "eps_sq", eps_sq)
    validation.non_negative("tcr", "inv_coeff", inv_coeff)
    z1, z2 = validation.pair("tcr", z1, z2, axis_name)
    z1, z2 = normalization.normalize_embeddings(z1), normalization.normalize_embeddings(z2)
    rate = 0.5 * (_coding_rate(z1, eps_sq, axis_name, route) + _coding_rate(z2, eps_sq, axis_name, route))
    inv = 1.0 - cl.total(jnp.sum(z1 * z2), axis_name) / cl.global_rows(z1, axis_name)
    return cl.per_device((-rate + inv_coeff * inv, dict(tcr=rate, inv=inv)), axis_name)


# ---------------------------------------------------------------------- W-MSE

def _whiten(x, eps):
    """Cholesky whitening of one sub-batch x [w, M]: W (x - mean), W^T W = Sigma^-1.

    Sigma is shrunk towards the identity, (1 - eps) Sigma + eps I, so a
    sub-batch smaller than M or a collapsed one still has a Cholesky factor.
    """
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    m = x.shape[1]
    sigma = xc.T @ xc / (x.shape[0] - 1)
    sigma = (1.0 - eps) * sigma + eps * jnp.eye(m, dtype=x.dtype)
    chol = jnp.linalg.cholesky(sigma)
    return jax.scipy.linalg.solve_triangular(chol, xc.T, lower=True).T


def _whiten_groups(x, w_size, eps):
    """_whiten on each consecutive block of `w_size` rows of x [n, M], one block at a time.

    Not `vmap`: a batched Cholesky or triangular solve becomes one LAPACK call
    that, on CPU with jaxlib 0.10, splits its batch over XLA's intra-op thread
    pool and blocks a pool thread until the pieces finish; two such calls
    running at once on a 2-thread pool wait on each other forever (the
    Fashion-MNIST W-MSE run hung at step 1). Unbatched calls run inline.
    """
    return jnp.concatenate([_whiten(x[i:i + w_size], eps) for i in range(0, x.shape[0], w_size)], axis=0)


def _wmse_example(rng, n, m):
    return Example(*correlated_pair(rng, n, m), static=dict(w_size=n // 2 if n >= 4 and n % 2 == 0 else n))


@register("wmse", inputs=("rng",), example=_wmse_example)
def wmse(z1, z2, *, axis_name=None, w_size=128, w_iter=1, eps=1e-4, rng=None):
    """W-MSE (Ermolov et al. 2021): whiten, then pull positives together.

    The global batch is split into sub-batches of `w_size` rows (after a
    random permutation drawn from `rng`, the same on every device); each view
    of each sub-batch is whitened with the inverse Cholesky factor of its
    shrunk covariance; the loss is the mean over samples of
    ||normalize(w1_i) - normalize(w2_i)||^2 = 2 - 2 cos, averaged over
    `w_iter` draws. `w_size` must divide the global batch; sub-batches
    larger than M give full-rank whitening (the paper uses w_size = 128 for
    M = 64). `eps` is the shrinkage towards the identity (official code: 0;
    ours > 0 keeps collapsed batches finite). Across devices every device
    whitens the gathered global batch (Cholesky of M x M matrices is cheap)
    so the value is exactly the single-device one.
    Returns (loss, {mse}).
    """
    z1, z2 = validation.pair("wmse", z1, z2, axis_name)
    validation.count("wmse", "w_iter", w_iter)
    validation.non_negative("wmse", "eps", eps)
    n = cl.global_rows(z1, axis_name)
    if not (isinstance(w_size, int) and 2 <= w_size and n % w_size == 0):
        raise ValueError(
            f"wmse: w_size={w_size!r} must be an integer >= 2 that divides the global batch {n}; "
            f"pass w_size=<a divisor of {n}> (e.g. {n} for one whitening over the whole batch)")
    if rng is None and w_iter != 1:
        raise ValueError("wmse: w_iter > 1 needs rng=<PRNG key> to draw a new sub-batch split each iteration")
    g1, g2 = cl.gather(z1, axis_name), cl.gather(z2, axis_name)
    keys = [None] if rng is None else list(jax.random.split(rng, w_iter))
    total = 0.0
    for key in keys:
        order = jnp.arange(n) if key is None else jax.random.permutation(key, n)
        w1, w2 = _whiten_groups(g1[order], w_size, eps), _whiten_groups(g2[order], w_size, eps)
        cos = jnp.sum(normalization.normalize_embeddings(w1) * normalization.normalize_embeddings(w2), axis=1)
        total = total + jnp.mean(2.0 - 2.0 * cos)
    loss = total / len(keys)
    return cl.per_device((loss, dict(mse=loss)), axis_name)
