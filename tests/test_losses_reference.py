"""Every registered loss against its float64 reference: value, aux terms and
gradient (directional finite differences of the reference vs JAX's
gradient), at N > M and N < M (the two automatic routes)."""
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from duality import losses
from tests import cases

SHAPES = [(24, 8), (6, 20)]  # N > M: covariance route; N < M: Gram route


def _diff_inputs(case):
    return dict(z1=case.z1, z2=case.z2, **case.views, **case.params)


def _jax_loss(case):
    fn = losses.get(case.name)
    fixed = {**case.batch, **case.rep, **case.static}

    @jax.jit
    def run(diff):
        d = dict(diff)
        z1, z2 = d.pop("z1"), d.pop("z2")
        return fn(z1, z2, **d, **fixed)

    return run


def _ref_at(case, diff):
    d = dict(diff)
    return case.ref_value(d.pop("z1"), d.pop("z2"), **d)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"N{s[0]}M{s[1]}")
@pytest.mark.parametrize("name", losses.names())
def test_value_and_gradient_match_reference(name, shape):
    case = cases.make(name, *shape)
    run = _jax_loss(case)
    diff = {k: jnp.asarray(v, jnp.float32) for k, v in _diff_inputs(case).items()}
    (loss, aux) = run(diff)
    ref_loss, ref_aux = _ref_at(case, _diff_inputs(case))
    assert loss.dtype == jnp.float32 and loss.shape == ()
    np.testing.assert_allclose(loss, ref_loss, rtol=3e-5, atol=1e-6)
    assert set(aux) == set(ref_aux)
    for k in aux:
        assert aux[k].dtype == jnp.float32
        np.testing.assert_allclose(aux[k], ref_aux[k], rtol=3e-5, atol=1e-6, err_msg=k)

    grads = jax.grad(lambda d: run(d)[0])(diff)
    rng = np.random.default_rng(1)
    base = _diff_inputs(case)
    gnorm = np.sqrt(sum(float(jnp.sum(g * g)) for g in grads.values()))
    assert np.isfinite(gnorm) and gnorm > 0
    for _ in range(3):
        v = {k: rng.normal(size=np.shape(x)) for k, x in base.items()}
        h = 1e-5
        plus = _ref_at(case, {k: base[k] + h * v[k] for k in base})[0]
        minus = _ref_at(case, {k: base[k] - h * v[k] for k in base})[0]
        fd = (plus - minus) / (2 * h)
        ad = sum(float(jnp.sum(grads[k] * v[k])) for k in base)
        assert abs(ad - fd) <= 2e-3 * (abs(fd) + gnorm), (ad, fd, gnorm)


@pytest.mark.parametrize("variant", ["A", "B"])
@pytest.mark.parametrize("name", ["simclr", "dcl_sq"])
def test_simclr_normalisation_variants(name, variant):
    case = cases.make(name, 12, 6, variant=variant)
    loss, aux = _jax_loss(case)({"z1": jnp.asarray(case.z1), "z2": jnp.asarray(case.z2)})
    ref_loss, ref_aux = case.ref_value(case.z1, case.z2)
    np.testing.assert_allclose(loss, ref_loss, rtol=2e-4)
    np.testing.assert_allclose(aux["pos_sim"], ref_aux["pos_sim"], rtol=2e-4)


@pytest.mark.parametrize("projection", ["sphere", "ball"])
def test_spectral_projection_mu(projection):
    case = cases.make("spectral", 10, 6, mu=3.0, projection=projection)  # rows have norms ~1-4: ball clips some
    loss, aux = _jax_loss(case)({"z1": jnp.asarray(case.z1), "z2": jnp.asarray(case.z2)})
    np.testing.assert_allclose(loss, case.ref_value(case.z1, case.z2)[0], rtol=3e-5)
    norms = np.linalg.norm(case.z1, axis=1)
    assert (norms < np.sqrt(3.0)).any() and (norms > np.sqrt(3.0)).any()


def test_wmse_random_subbatches_match_reference():
    case = cases.make("wmse", 16, 4, w_size=8)
    key = jax.random.key(3)
    loss, _ = losses.wmse(case.z1, case.z2, w_size=8, w_iter=2, rng=key)
    orders = [np.asarray(jax.random.permutation(k, 16)) for k in jax.random.split(key, 2)]
    ref, _ = cases.R.wmse(case.z1, case.z2, 8, orders=orders)
    np.testing.assert_allclose(loss, ref, rtol=2e-4)
    # a different split gives a different value: the permutation is really used
    assert abs(float(loss) - cases.R.wmse(case.z1, case.z2, 8)[0]) > 1e-4


def _linalg_operand_ranks(jaxpr, out):
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("cholesky", "triangular_solve"):
            out.append((eqn.primitive.name, [v.aval.ndim for v in eqn.invars]))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            _linalg_operand_ranks(sub, out)
    return out


def test_wmse_calls_lapack_one_matrix_at_a_time():
    # Batched Cholesky / triangular solves deadlock jaxlib 0.10's CPU thread pool
    # when two run at once (see dimension_contrastive._whiten_groups).
    z = jnp.ones((32, 4)) + jnp.arange(128.0).reshape(32, 4) ** 0.5
    fn = jax.value_and_grad(lambda a, b: losses.wmse(a, b, w_size=8, w_iter=2, rng=jax.random.key(0))[0], (0, 1))
    found = _linalg_operand_ranks(jax.make_jaxpr(fn)(z, z + 1.0).jaxpr, [])
    assert {name for name, _ in found} == {"cholesky", "triangular_solve"}
    assert all(r == 2 for _, ranks in found for r in ranks), found


@pytest.mark.parametrize("symmetric", [True, False])
def test_moco_in_batch_negatives_and_asymmetric(symmetric):
    case = cases.make("moco", 8, 5)
    kw = dict(key1=case.batch["key1"], key2=case.batch["key2"], symmetric=symmetric)
    for queue in (None, case.rep["queue"]):
        loss, _ = losses.moco(case.z1, case.z2, queue=queue, **kw)
        ref, _ = cases.R.moco(case.z1, case.z2, queue=queue, **kw)
        np.testing.assert_allclose(loss, ref, rtol=2e-4)


def test_vicreg_ctr_is_vicreg_exp_on_transposes():
    """The loss API contract: aux of vicreg_ctr(z1, z2) equals vicreg_exp's on z.T (eq. 13)."""
    case = cases.make("vicreg_ctr", 9, 14)
    l_ctr, a_ctr = losses.vicreg_ctr(case.z1, case.z2)
    l_exp, a_exp = losses.vicreg_exp(case.z1.T, case.z2.T)
    np.testing.assert_allclose(l_ctr, l_exp, rtol=1e-5)
    for k in ("inv", "var", "cov"):
        np.testing.assert_allclose(a_ctr[k], a_exp[k], rtol=1e-5)


def test_vicreg_weights_combine_unweighted_terms():
    case = cases.make("vicreg", 12, 6)
    loss, aux = losses.vicreg(case.z1, case.z2, sim_coeff=2.0, std_coeff=3.0, cov_coeff=5.0)
    np.testing.assert_allclose(loss, 2 * aux["inv"] + 3 * aux["var"] + 5 * aux["cov"], rtol=1e-6)
    _, aux_default = losses.vicreg(case.z1, case.z2)
    for k in aux:  # coefficients do not change the reported terms
        np.testing.assert_allclose(aux[k], aux_default[k], rtol=1e-6)
