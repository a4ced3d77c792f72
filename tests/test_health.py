"""Training-health signals: weight drift from initialisation and batch RankMe, against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from duality import health, train
from duality.analysis import embedding
from tests.train_configs import tiny


def test_drift_counts_weights_only_and_is_relative_to_initialisation():
    rng = np.random.default_rng(0)
    w0 = {"backbone": {"k": rng.normal(size=(3, 4)), "bias": np.zeros(4)}, "proj": {"k": rng.normal(size=(4, 2))}}
    w = {"backbone": {"k": w0["backbone"]["k"] * 2.0, "bias": np.ones(4)}, "proj": {"k": w0["proj"]["k"] + 1.0}}
    m = jax.tree.map(float, health.drift(jax.tree.map(jnp.asarray, w), jax.tree.map(jnp.asarray, w0)))
    assert m["drift_encoder"] == pytest.approx(1.0, rel=1e-6) and m["norm_encoder"] == pytest.approx(2.0, rel=1e-6)
    k0 = w0["proj"]["k"]
    assert m["drift_projector"] == pytest.approx(np.sqrt(8.0) / np.linalg.norm(k0), rel=1e-5)
    assert m["norm_projector"] == pytest.approx(np.linalg.norm(k0 + 1.0) / np.linalg.norm(k0), rel=1e-5)
    assert "drift_predictor" not in m  # no such module
    same = health.drift(jax.tree.map(jnp.asarray, w0), jax.tree.map(jnp.asarray, w0))
    assert float(same["drift_encoder"]) == 0.0 and float(same["norm_projector"]) == pytest.approx(1.0)


@pytest.mark.parametrize("n,m", [(64, 16), (16, 64)])  # both routes: M x M second moment, N x N Gram
def test_rankme_is_the_entropy_of_the_singular_values(n, m):
    z = np.random.default_rng(1).normal(size=(n, m)) * np.linspace(0.1, 3.0, m)
    want = embedding.effective_rank(embedding.spectrum(z, center=False))
    assert float(health.rankme(jnp.asarray(z, jnp.float32))) == pytest.approx(want, rel=1e-4)
    collapsed = np.outer(np.ones(n), np.arange(1, m + 1))  # rank 1
    # float32 eigenvalues of a Gram matrix: the zero ones come out at ~1e-7 of the largest, sqrt ~3e-4
    assert float(health.rankme(jnp.asarray(collapsed, jnp.float32))) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("n,m", [(64, 4), (16, 64)])
def test_rankme_across_devices_is_the_global_batch_value(n, m):
    z = jnp.asarray(np.random.default_rng(2).normal(size=(n, m)), jnp.float32)
    mesh = Mesh(np.array(jax.devices()[:8]), ("batch",))
    sharded = jax.jit(jax.shard_map(lambda x: health.rankme(x, "batch"), mesh=mesh, in_specs=P("batch"),
                                    out_specs=P()))(z)
    assert float(sharded) == pytest.approx(float(health.rankme(z)), rel=1e-4)


@pytest.mark.slow
def test_the_train_step_logs_drift_rankme_and_every_loss_term():
    t = train.Trainer(tiny("vicreg"))
    state = t.init_state(0)
    w0 = jax.device_get(t.initial_params())
    for step in range(3):
        state, metrics = t.step_fn(state, t.device_batch(t.data.train.batch(step)))
    m = jax.device_get(metrics)
    assert {"inv", "var", "cov", "rankme_z", "drift_encoder", "drift_projector", "norm_encoder"} <= set(m)
    p = jax.device_get(state.params)
    # The step logs the drift of the parameters it returns (after its update).
    want = float(health.drift(jax.tree.map(jnp.asarray, p), jax.tree.map(jnp.asarray, w0))["drift_encoder"])
    assert float(m["drift_encoder"]) == pytest.approx(want, rel=1e-5) and want > 0
    assert 1.0 <= float(m["rankme_z"]) <= t.global_batch
