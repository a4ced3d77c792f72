"""The paper's criteria and formal results: Def. 3.2, Theorem 3.3, Lemma 3.4,
Corollary 3.4.1, eq. 14 and Proposition 3.1; and the Gram/covariance routes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duality import losses
from tests import reference as R


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 24), m=st.integers(1, 24), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-2, 1.0, 10.0]))
def test_theorem_3_3_on_random_matrices(n, m, seed, scale):
    z = np.random.default_rng(seed).normal(size=(n, m)) * scale
    t = losses.duality_terms(jnp.asarray(z, jnp.float32))
    mag = float(t["lhs"]) + 1e-30
    np.testing.assert_allclose(float(t["lhs"]), float(t["rhs"]), rtol=2e-5 * max(n, m))
    # each term against the definition, in float64
    np.testing.assert_allclose(float(t["l_c"]), R.l_c(z), rtol=1e-4, atol=1e-5 * mag)
    np.testing.assert_allclose(float(t["l_nc"]), R.l_nc(z), rtol=1e-4, atol=1e-5 * mag)
    np.testing.assert_allclose(float(t["sample_quartic"]), np.sum(np.sum(z**2, 1) ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(t["dimension_quartic"]), np.sum(np.sum(z**2, 0) ** 2), rtol=1e-5)


def test_theorem_3_3_is_not_trivial():
    """The two criteria differ, and so do the quartic terms: only their sums agree."""
    z = jnp.asarray(np.random.default_rng(0).normal(size=(12, 5)), jnp.float32)
    t = losses.duality_terms(z)
    assert abs(float(t["l_c"]) - float(t["l_nc"])) > 1.0
    np.testing.assert_allclose(t["l_nc"] - t["l_c"], t["sample_quartic"] - t["dimension_quartic"], rtol=1e-4)


@pytest.mark.parametrize("fn,defined_on", [(losses.l_c, "gram"), (losses.l_nc, "covariance")])
@pytest.mark.parametrize("shape", [(8, 30), (30, 8)])
def test_criteria_routes_agree(fn, defined_on, shape):
    z = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
    ref = R.l_c(np.asarray(z, np.float64)) if fn is losses.l_c else R.l_nc(np.asarray(z, np.float64))
    for route in ("auto", "gram", "covariance"):
        np.testing.assert_allclose(fn(z, route=route), ref, rtol=1e-5)


@pytest.mark.parametrize("name", ["vicreg", "barlow_twins", "spectral", "tcr"])
def test_large_embedding_gram_route_equals_covariance_route(name):
    """N < M: the N x N route is chosen automatically and matches M x M to 1e-5."""
    rng = np.random.default_rng(2)
    z1 = jnp.asarray(rng.normal(size=(32, 256)), jnp.float32)
    z2 = z1 + 0.5 * jnp.asarray(rng.normal(size=(32, 256)), jnp.float32)
    fn = losses.get(name)
    cov_loss, cov_aux = jax.jit(lambda a, b: fn(a, b, route="covariance"))(z1, z2)
    gram_loss, gram_aux = jax.jit(lambda a, b: fn(a, b, route="gram"))(z1, z2)
    auto_loss, _ = jax.jit(lambda a, b: fn(a, b))(z1, z2)
    np.testing.assert_allclose(gram_loss, cov_loss, rtol=1e-5)
    np.testing.assert_allclose(auto_loss, gram_loss, rtol=0)  # auto took the Gram route
    for k in cov_aux:
        np.testing.assert_allclose(gram_aux[k], cov_aux[k], rtol=1e-5, atol=1e-6)
    g_cov = jax.grad(lambda a: fn(a, z2, route="covariance")[0])(z1)
    g_gram = jax.grad(lambda a: fn(a, z2, route="gram")[0])(z1)
    np.testing.assert_allclose(g_gram, g_cov, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(g_cov))))


def test_lemma_3_4_bounds():
    rng = np.random.default_rng(3)
    n, m = 40, 12
    for z in (rng.normal(size=(n, m)), rng.exponential(size=(n, m)), R.unit(rng.normal(size=(n, m)))):
        b = losses.norm_coupling_bounds(jnp.asarray(z, jnp.float32))
        assert b["dimension_lower"] <= b["dimension_quartic"] * (1 + 1e-6) <= b["dimension_upper"] * (1 + 1e-6)
        assert b["sample_lower"] <= b["sample_quartic"] * (1 + 1e-6) <= b["sample_upper"] * (1 + 1e-6)
    # unit embeddings (a = 1): the paper's form N^2/M <= sum_j ||K_j.||^4 <= N^2
    b = losses.norm_coupling_bounds(jnp.asarray(z, jnp.float32))
    np.testing.assert_allclose([b["dimension_lower"], b["dimension_upper"]], [n * n / m, n * n], rtol=1e-5)
    # the bounds are tight: a constant matrix reaches the lower, one-hot rows the upper
    const = losses.norm_coupling_bounds(jnp.full((n, m), 0.3))
    np.testing.assert_allclose(const["dimension_quartic"], const["dimension_lower"], rtol=1e-5)
    onehot = losses.norm_coupling_bounds(jnp.zeros((n, m)).at[:, 2].set(1.0))
    np.testing.assert_allclose(onehot["dimension_quartic"], onehot["dimension_upper"], rtol=1e-5)


def test_corollary_3_4_1_with_unit_embeddings():
    rng = np.random.default_rng(4)
    for n, m in [(30, 8), (8, 30), (16, 16)]:
        z = losses.normalize_embeddings(jnp.asarray(rng.normal(size=(n, m)), jnp.float32))
        lc, lnc = float(losses.l_c(z)), float(losses.l_nc(z))
        tol = 1e-4 * (lc + lnc + n * n)
        assert lnc - n + n * n / m - tol <= lc <= lnc - n + n * n + tol


@pytest.mark.parametrize("shape", [(64, 16), (10, 40)])
def test_eq14_dimension_standardisation(shape):
    n, m = shape
    z = jnp.asarray(np.random.default_rng(5).normal(size=shape) * 3 + 1, jnp.float32)
    k = losses.standardize_dimensions(z)
    np.testing.assert_allclose(jnp.sum(k * k), n, rtol=1e-5)  # ||K||_F^2 = N
    np.testing.assert_allclose(losses.dimension_quartic(k), n * n / m, rtol=1e-5)  # Lemma 3.4's lower bound
    np.testing.assert_allclose(jnp.mean(k, axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(k, R.standardize_eq14(np.asarray(z, np.float64)), rtol=1e-4, atol=1e-5)


def test_proposition_3_1_uniform_sphere_negatives():
    """i.i.d. uniform-sphere embeddings: negative dot products have mean 0 and variance 1/M,
    so E[L_c] = N (N - 1) / M."""
    n, m = 512, 64
    z = losses.normalize_embeddings(jax.random.normal(jax.random.key(0), (n, m)))
    dots = np.asarray(z @ z.T)[~np.eye(n, dtype=bool)]
    assert abs(dots.mean()) < 0.05 * np.sqrt(1 / m)  # a twentieth of one standard deviation
    np.testing.assert_allclose(dots.var(), 1 / m, rtol=0.05)
    np.testing.assert_allclose(losses.l_c(z) / (n * (n - 1)), 1 / m, rtol=0.05)
    # and a collapsed set is far from it
    assert float(losses.l_c(jnp.ones((n, m)) / np.sqrt(m))) / (n * (n - 1)) > 0.9
