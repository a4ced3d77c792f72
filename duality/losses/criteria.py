"""The paper's two criteria and the identity that links them.

Notation (Garrido et al. 2023, Sec. 3): the embedding matrix is K (M x N),
columns are samples. Here embeddings come as `z` of shape [N, M] with rows as
samples, so K = z.T:

  L_c  = ||K^T K - diag(K^T K)||_F^2   (Def. 3.2) = off-diagonal of z z^T (N x N)
  L_nc = ||K K^T - diag(K K^T)||_F^2   (Def. 3.2) = off-diagonal of z^T z (M x M)

Theorem 3.3: L_nc + sum_j ||K_j.||^4 = L_c + sum_i ||K_.i||^4, because
||K^T K||_F = ||K K^T||_F. That identity is also why a covariance-type
Frobenius term never needs the M x M matrix when N < M: it equals a sum over
two N x N Gram matrices. The `offdiag_sq_*` helpers below pick the smaller
route (`route="auto"`) and every dimension-contrastive loss uses them.

Routes, named by the square matrix they form:
  "covariance": M x M (feature-by-feature) matrices,
  "gram":       N x N (sample-by-sample) matrices, N = global batch,
  "auto":       whichever is smaller (ties go to the matrix the term is
                defined on).
Off-diagonal sums: the route that forms the matrix the term is defined on
masks the diagonal exactly; the other route computes full minus diagonal,
whose float32 relative error is ~1e-7 x (full / off-diagonal). "auto" takes
the Gram route only when N < M, where off-diagonal mass dominates for
generic embeddings; for heavily decorrelated ones force "covariance".
Across devices the "gram" route multiplies each device's rows by the
gathered global batch (n x N blocks, no redundant work) and the "covariance"
route all-reduces the M x M partial products.
"""
from __future__ import annotations

import jax.numpy as jnp

from duality.losses import collectives as cl
from duality.losses import validation

ROUTES = ("auto", "gram", "covariance")


def resolve_route(route: str, n_global: int, m: int, defined_on: str) -> str:
    validation.choice("route", "route", route, ROUTES)
    if route != "auto":
        return route
    if n_global == m:
        return defined_on
    return "gram" if n_global < m else "covariance"


def _mask_self(block, axis_name):
    """Zero entries (i, first_row + i) of a [n, N] local-rows-by-global block."""
    n, big_n = block.shape
    cols = jnp.arange(big_n)[None, :]
    own = cl.first_row(n, axis_name) + jnp.arange(n)[:, None]
    return jnp.where(cols == own, 0.0, block)


def offdiag_sq_feature_cross(a, b, axis_name=None, route: str = "auto"):
    """sum_{j != k} ((a^T b)_{jk})^2 over the global batch; a, b: [n, M] rows.

    (a^T b is M x M. Through Gram matrices:
    ||a^T b||_F^2 = <a a^T, b b^T>_F, minus the squared diagonal.)
    """
    m = a.shape[1]
    r = resolve_route(route, cl.global_rows(a, axis_name), m, "covariance")
    if r == "covariance":
        c = cl.total(a.T @ b, axis_name)
        return jnp.sum(jnp.square(c - jnp.diag(jnp.diag(c))))
    ga = a @ cl.gather(a, axis_name).T  # [n, N]
    gb = b @ cl.gather(b, axis_name).T
    full = cl.total(jnp.sum(ga * gb), axis_name)
    diag = cl.batch_sum(a * b, axis_name)  # (a^T b)_jj, [M]
    return full - jnp.sum(jnp.square(diag))


def offdiag_sq_sample_cross(a, b, axis_name=None, route: str = "auto"):
    """sum_{i != j} (a_i . b_j)^2 over the global batch; a, b: [n, M] rows.

    (a b^T is N x N. Through covariance matrices:
    ||a b^T||_F^2 = <a^T a, b^T b>_F, minus the squared diagonal.)
    """
    m = a.shape[1]
    r = resolve_route(route, cl.global_rows(a, axis_name), m, "gram")
    if r == "gram":
        block = a @ cl.gather(b, axis_name).T  # [n, N]
        return cl.total(jnp.sum(jnp.square(_mask_self(block, axis_name))), axis_name)
    caa = cl.total(a.T @ a, axis_name)
    cbb = cl.total(b.T @ b, axis_name)
    diag = cl.total(jnp.sum(jnp.square(jnp.sum(a * b, axis=1))), axis_name)
    return jnp.sum(caa * cbb) - diag


def l_c(z, axis_name=None, route: str = "auto"):
    """Sample-contrastive criterion L_c (Def. 3.2): off-diagonal of z z^T, squared and summed."""
    z = validation.matrix("l_c", "z", z)
    return cl.per_device(offdiag_sq_sample_cross(z, z, axis_name, route), axis_name)


def l_nc(z, axis_name=None, route: str = "auto"):
    """Dimension-contrastive criterion L_nc (Def. 3.2): off-diagonal of z^T z, squared and summed."""
    z = validation.matrix("l_nc", "z", z)
    return cl.per_device(offdiag_sq_feature_cross(z, z, axis_name, route), axis_name)


def _sample_quartic(z, axis_name):
    return cl.total(jnp.sum(jnp.square(jnp.sum(jnp.square(z), axis=1))), axis_name)


def _dimension_quartic(z, axis_name):
    return jnp.sum(jnp.square(cl.batch_sum(jnp.square(z), axis_name)))


def sample_quartic(z, axis_name=None):
    """sum_i ||K_.i||^4: fourth powers of the embedding (row) norms."""
    z = validation.matrix("sample_quartic", "z", z)
    return cl.per_device(_sample_quartic(z, axis_name), axis_name)


def dimension_quartic(z, axis_name=None):
    """sum_j ||K_j.||^4: fourth powers of the dimension (column) norms over the global batch."""
    z = validation.matrix("dimension_quartic", "z", z)
    return cl.per_device(_dimension_quartic(z, axis_name), axis_name)


def duality_terms(z, axis_name=None):
    """Both sides of Theorem 3.3, each computed on its own route.

    Returns a dict of float32 scalars:
      l_c, l_nc, sample_quartic (sum_i ||K_.i||^4), dimension_quartic
      (sum_j ||K_j.||^4), lhs = l_nc + dimension_quartic and
      rhs = l_c + sample_quartic.
    L_c is computed from the N x N Gram matrix and L_nc from the M x M
    covariance, so `lhs == rhs` is a numerical check of the theorem rather
    than the same number twice.
    """
    z = validation.matrix("duality_terms", "z", z)
    lc = offdiag_sq_sample_cross(z, z, axis_name, route="gram")
    lnc = offdiag_sq_feature_cross(z, z, axis_name, route="covariance")
    sq, dq = _sample_quartic(z, axis_name), _dimension_quartic(z, axis_name)
    return cl.per_device(dict(l_c=lc, l_nc=lnc, sample_quartic=sq, dimension_quartic=dq,
                              lhs=lnc + dq, rhs=lc + sq), axis_name)


def norm_coupling_bounds(z, axis_name=None):
    """Lemma 3.4: how fixing one kind of norm bounds the other.

    With F = ||K||_F^2 (the sum of either kind of squared norm), the power-mean
    inequality and (sum x)^2 >= sum x^2 give, for any K:
        F^2 / M <= sum_j ||K_j.||^4 <= F^2      (dimensions)
        F^2 / N <= sum_i ||K_.i||^4 <= F^2      (embeddings)
    With every embedding of norm a (F = N a^2) the first line is the paper's
    (N^2/M) a^4 <= sum_j ||K_j.||^4 <= N^2 a^4, and with every dimension of
    norm a (F = M a^2) the second is (M^2/N) a^4 <= sum_i ||K_.i||^4 <= M^2 a^4.
    Returns a dict with the two quartic sums and their bounds.
    """
    z = validation.matrix("norm_coupling_bounds", "z", z)
    n, m = cl.global_rows(z, axis_name), z.shape[1]
    f = cl.total(jnp.sum(jnp.square(z)), axis_name)
    return cl.per_device(dict(
        frobenius_sq=f,
        dimension_quartic=_dimension_quartic(z, axis_name),
        dimension_lower=f * f / m, dimension_upper=f * f,
        sample_quartic=_sample_quartic(z, axis_name),
        sample_lower=f * f / n, sample_upper=f * f), axis_name)
