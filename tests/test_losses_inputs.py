"""Degenerate inputs stay finite; dtypes; bad inputs give errors that name
the problem; the registry and its keyword checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from duality import losses
from tests import cases


def _call(name, z1, z2, **over):
    n, m = z1.shape[-2:] if z1.ndim >= 2 else (4, 3)
    case = cases.make(name, n, m)
    kw = {k: jnp.asarray(v, jnp.float32) for k, v in {**case.batch, **case.views, **case.rep, **case.params}.items()}
    kw.update(case.static)
    kw.update(over)
    fn = losses.get(name)
    return fn(z1, z2, **kw)


def _degenerate(kind, n=6, m=5):
    if kind == "collapsed":  # every embedding equal: the failure mode SSL must survive
        row = jnp.asarray(np.random.default_rng(0).normal(size=(1, m)), jnp.float32)
        return jnp.tile(row, (n, 1)), jnp.tile(row, (n, 1))
    if kind == "zeros":
        return jnp.zeros((n, m)), jnp.zeros((n, m))
    rng = np.random.default_rng(1)  # N = 2, the smallest batch every loss accepts
    return (jnp.asarray(rng.normal(size=(2, m)), jnp.float32),) * 2


@pytest.mark.parametrize("kind", ["collapsed", "zeros", "n2"])
@pytest.mark.parametrize("name", losses.names())
def test_degenerate_inputs_are_finite_with_finite_gradients(name, kind):
    z1, z2 = _degenerate(kind)
    over = {"w_size": z1.shape[0]} if name == "wmse" else {}

    @jax.jit
    def f(z1, z2):
        return _call(name, z1, z2, **over)[0]

    loss, grads = jax.value_and_grad(f, argnums=(0, 1))(z1, z2)
    assert np.isfinite(float(loss)), (name, kind, loss)
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g))), (name, kind)


@pytest.mark.parametrize("name", losses.names())
def test_bfloat16_inputs_compute_in_float32(name):
    case = cases.make(name, 8, 6)
    b1, b2 = jnp.asarray(case.z1, jnp.bfloat16), jnp.asarray(case.z2, jnp.bfloat16)
    loss, aux = _call(name, b1, b2)
    assert loss.dtype == jnp.float32 and all(v.dtype == jnp.float32 for v in aux.values())
    # the same as float32 on the bf16-rounded values: no arithmetic happened in bf16
    want, _ = _call(name, b1.astype(jnp.float32), b2.astype(jnp.float32))
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_names_and_get():
    expected = {"simclr", "dcl", "simclr_sq", "simclr_abs", "dcl_sq", "dcl_abs", "spectral", "vicreg",
                "vicreg_exp", "vicreg_ctr", "barlow_twins", "tcr", "wmse", "byol", "simsiam", "moco",
                "swav", "dino"}
    assert expected <= set(losses.names())  # the loss API contract's names, and any added since
    assert losses.get("vicreg") is losses.vicreg
    assert losses.vicreg.hyperparameters["sim_coeff"] == 25.0
    assert losses.barlow_twins.hyperparameters["lambd"] == 0.0051
    assert losses.simclr.hyperparameters["temperature"] == 0.1


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown loss 'vicregg'.*vicreg.*barlow_twins"):
        losses.get("vicregg")


def test_unknown_hyperparameter_lists_valid_ones():
    z = jnp.ones((4, 3))
    with pytest.raises(TypeError, match=r"vicreg: unknown hyperparameter.*'temprature'.*sim_coeff"):
        losses.get("vicreg")(z, z, temprature=0.1)
    with pytest.raises(TypeError, match=r"simclr.*'tau'.*temperature"):
        losses.simclr(z, z, tau=0.5)
    with pytest.raises(TypeError, match="positionally"):
        losses.simclr(z, z, None)


@pytest.mark.parametrize("name", losses.names())
def test_bad_shapes_name_the_problem(name):
    good = jnp.ones((4, 3))
    with pytest.raises(ValueError, match=rf"{name}: `z1` must have rank 2"):
        _call(name, jnp.ones((4, 3, 2)), jnp.ones((4, 3, 2)))
    with pytest.raises(ValueError, match=rf"{name}: `z1` must have rank 2"):
        losses.get(name)(jnp.ones(4), good)
    with pytest.raises(ValueError, match=rf"{name}: `z1` and `z2` must have the same shape"):
        losses.get(name)(good, jnp.ones((5, 3)))


@pytest.mark.parametrize("name", [n for n in losses.names() if n not in ("byol", "simsiam", "dino", "swav")])
def test_batch_too_small(name):
    z = jnp.ones((1, 3))
    with pytest.raises(ValueError, match=rf"{name}: needs a global batch of at least 2"):
        losses.get(name)(z, z, **({"key1": z, "key2": z} if name == "moco" else {}))


def test_wrong_dtype_and_bad_options():
    z = jnp.ones((4, 3))
    with pytest.raises(TypeError, match="real-valued"):
        losses.vicreg(jnp.ones((4, 3), bool), z)
    with pytest.raises(TypeError, match="complex"):
        losses.simclr(jnp.ones((4, 3), jnp.complex64), z)
    with pytest.raises(ValueError, match="variant='C'"):
        losses.simclr(z, z, variant="C")
    with pytest.raises(ValueError, match="route='fast'"):
        losses.vicreg(z, z, route="fast")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        losses.dcl(z, z, temperature=0.0)
    with pytest.raises(ValueError, match="w_size=3 must be an integer >= 2 that divides the global batch 4"):
        losses.wmse(z, z, w_size=3)
    with pytest.raises(ValueError, match="rng="):
        losses.wmse(z, z, w_size=2, w_iter=2)
    with pytest.raises(ValueError, match="vicreg_exp: needs an embedding dimension of at least 2"):
        losses.vicreg_exp(jnp.ones((4, 1)), jnp.ones((4, 1)))
    with pytest.raises(ValueError, match="projection='disk'"):
        losses.spectral(z, z, mu=1.0, projection="disk")


def test_missing_or_mismatched_extra_inputs():
    z = jnp.ones((4, 3))
    with pytest.raises(TypeError, match="byol: needs target1= and target2="):
        losses.byol(z, z)
    with pytest.raises(ValueError, match="`target2` must have the shape of `z2`"):
        losses.simsiam(z, z, target1=z, target2=jnp.ones((4, 2)))
    with pytest.raises(TypeError, match="moco: needs key1="):
        losses.moco(z, z, queue=z)
    with pytest.raises(ValueError, match="queue rows have dim 5"):
        losses.moco(z, z, key1=z, key2=z, queue=jnp.ones((8, 5)))
    with pytest.raises(TypeError, match="dino: needs teacher1="):
        losses.dino(z, z)
    with pytest.raises(ValueError, match=r"center must have shape \(3,\)"):
        losses.dino(z, z, teacher1=z, teacher2=z, center=jnp.zeros(4))
    with pytest.raises(TypeError, match="swav: needs prototypes="):
        losses.swav(z, z)
    with pytest.raises(ValueError, match=r"prototypes are \[K, 2\]"):
        losses.swav(z, z, prototypes=jnp.ones((5, 2)))
    with pytest.raises(ValueError, match=r"extra_views must be \[V, 4, 3\]"):
        losses.swav(z, z, prototypes=jnp.ones((5, 3)), extra_views=jnp.ones((2, 4, 2)))


def test_sinkhorn_codes_are_equipartitioned():
    scores = jnp.asarray(np.random.default_rng(0).normal(size=(64, 8)) * 0.3, jnp.float32)
    q = losses.sinkhorn(scores, epsilon=0.05, iters=50)
    np.testing.assert_allclose(jnp.sum(q, axis=1), 1.0, rtol=1e-5)  # each sample: a distribution
    np.testing.assert_allclose(jnp.sum(q, axis=0), 64 / 8, rtol=1e-2)  # each prototype: N / K samples
    np.testing.assert_allclose(q, cases.R.sinkhorn(np.asarray(scores, np.float64), 0.05, 50), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", losses.names())
def test_pod_scale_shapes_trace(name):
    """Counts like N^2 M overflow int32 at pod scale; trace (no memory) at N = 32768, M = 65536."""
    n, m = 32768, 65536
    spec = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)  # noqa: E731
    # The registered example's inputs at a small batch n0 and dimension m0, each axis scaled up: the last
    # axis when it is m0, a batch-sized axis (a multiple of n0: a batch, a queue of batches) by n / n0.
    n0, m0 = 8, 5
    ex = losses.example(name, n0, m0)

    def scaled(shape):
        return tuple(m if i == len(shape) - 1 and d == m0 else d * (n // n0) if d % n0 == 0 else d
                     for i, d in enumerate(shape))

    extra = {k: spec(*scaled(np.shape(v))) for role in (ex.batch, ex.views, ex.rep, ex.params) for k, v in role.items()}
    static = {k: v * (n // n0) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in ex.static.items()}
    fn = losses.get(name)
    out = jax.eval_shape(jax.value_and_grad(lambda a, b, kw: fn(a, b, **kw, **static)[0]), spec(n, m), spec(n, m),
                         extra)
    assert out[0].shape == () and out[1].shape == (n, m)
