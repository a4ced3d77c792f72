"""The spectral-embedding check (Balestriero & LeCun): graph, angles, graph-form losses, a tiny run."""
import jax.numpy as jnp
import numpy as np
import pytest

from duality import losses
from duality.analysis import spectral_check as sc

pytestmark = pytest.mark.slow  # trains, or reads a data set: the full suite only (launch/test.sh)


def test_clique_graph_and_its_spectral_embedding():
    g = sc.clique_graph(5, 3)
    assert g.shape == (15, 15) and (g == g.T).all() and (np.diag(g) == 0).all() and (g.sum(1) == 2).all()
    eig = np.linalg.eigvalsh(g)
    assert np.isclose(eig, 2).sum() == 5 and np.isclose(eig, -1).sum() == 10
    emb = sc.spectral_embedding(g, 5)  # spans the originals' indicator vectors
    ind = (np.tile(np.arange(5), 3)[:, None] == np.arange(5)[None, :]).astype(float)
    np.testing.assert_allclose(sc.principal_angles(emb, ind), 0, atol=1e-5)


def test_principal_angles():
    e = np.eye(4)
    np.testing.assert_allclose(sc.principal_angles(e[:, :2], e[:, :2] * 3), [0, 0], atol=1e-5)
    np.testing.assert_allclose(sc.principal_angles(e[:, :1], e[:, 1:2]), [90], atol=1e-5)
    np.testing.assert_allclose(sc.principal_angles(e[:, :1], (e[:, :1] + e[:, 1:2])), [45], atol=1e-5)


def test_graph_simclr_with_two_views_is_the_librarys_simclr():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    g = sc.clique_graph(6, 2)  # rows: view 0 of each original, then view 1
    got = sc.simclr_g(jnp.asarray(np.concatenate([z1, z2]), jnp.float32), jnp.asarray(g, jnp.float32), tau=0.2)
    want = losses.get("simclr")(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), temperature=0.2)[0]
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)


def test_graph_vicreg_invariance_is_the_dirichlet_energy():
    rng = np.random.default_rng(1)
    z, g = rng.normal(size=(8, 3)), sc.clique_graph(4, 2)
    slow = sum(g[i, j] * np.sum((z[i] - z[j]) ** 2) for i in range(8) for j in range(8))
    got = sc.vicreg_g(jnp.asarray(z, jnp.float32), jnp.asarray(g, jnp.float32), alpha=0.0, beta=0.0, gamma=8.0)
    np.testing.assert_allclose(float(got), slow, rtol=1e-5)  # gamma / N = 1


def test_a_tiny_run_aligns_with_the_linear_spectral_embedding():
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
    r = sc.run(images, views=4, dim=16, k=12, steps=300, methods=("vicreg_small_inv", "barlow_twins"))
    assert r["r_G"] == 6 and r["rank_G"] == 24
    rand = r["methods"]["random W"]
    for name in ("vicreg_small_inv", "barlow_twins"):
        m = r["methods"][name]
        assert 1 <= m["rank_Z"] <= 12 and m["angle_to_linear_G_mean_deg"] < rand["angle_to_linear_G_mean_deg"]
    assert "r_G = 6" in sc.format_report(r)
