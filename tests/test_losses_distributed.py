"""Across 8 devices every loss equals itself on the global batch.

A small shared network W maps inputs to embeddings; each device holds a
slice of the global batch. The loss value and the pmean of per-device
gradients of the shared parameters (W, and SwAV's prototypes) must equal
the single-device value and gradient on the concatenated batch, under
`jax.shard_map` (with and without check_vma) and `jax.pmap`. A loss whose
gather drops cross-device gradient, or whose statistics are per-device,
fails here by a factor of the device count.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from duality import losses
from tests import cases

D_IN = 5
N_DEV = 8


def _net(w, x):
    return jnp.tanh(x @ w)


def _setup(name, n, m):
    case = cases.make(name, n, m)
    rng = np.random.default_rng(7)
    w = jnp.asarray(rng.normal(size=(D_IN, m)) / np.sqrt(D_IN), jnp.float32)
    x1 = jnp.asarray(rng.normal(size=(n, D_IN)), jnp.float32)
    x2 = jnp.asarray(np.asarray(x1) + 0.3 * rng.normal(size=(n, D_IN)), jnp.float32)
    xv = {k: jnp.asarray(rng.normal(size=v.shape[:2] + (D_IN,)), jnp.float32) for k, v in case.views.items()}
    batch = {k: jnp.asarray(v, jnp.float32) for k, v in case.batch.items()}
    rep = {k: jnp.asarray(v, jnp.float32) for k, v in case.rep.items()}
    params = {"w": w, **{k: jnp.asarray(v, jnp.float32) for k, v in case.params.items()}}
    fn = losses.get(name)

    def objective(params, x1, x2, xv, batch, rep, axis_name=None):
        p = dict(params)
        w = p.pop("w")
        views = {k: _net(w, v) for k, v in xv.items()}
        return fn(_net(w, x1), _net(w, x2), axis_name=axis_name, **views, **batch, **rep, **p, **case.static)

    return objective, params, (x1, x2, xv, batch, rep)


def _single(objective, params, data):
    (loss, aux), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(params, *data)
    return loss, aux, grads


def _sharded(objective, params, data, check_vma):
    mesh = jax.make_mesh((N_DEV,), ("batch",))
    x1, x2, xv, batch, rep = data
    specs = (P(), P("batch"), P("batch"), {k: P(None, "batch") for k in xv},
             {k: P("batch") for k in batch}, {k: P() for k in rep})

    def per_device(params, *data):
        if check_vma:  # differentiate a per-device copy, as pmap does
            params = jax.lax.pcast(params, "batch", to="varying")
        (loss, aux), grads = jax.value_and_grad(
            functools.partial(objective, axis_name="batch"), has_aux=True)(params, *data)
        return jax.lax.pmean((loss, aux, grads), "batch")

    fn = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=P(), check_vma=check_vma))
    args = jax.device_put((params, x1, x2, xv, batch, rep), jax.tree.map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda s: isinstance(s, P)))
    return fn(*args)


def _pmapped(objective, params, data):
    x1, x2, xv, batch, rep = data

    def split(x, axis=0):  # [.., N, ..] -> [devices, .., n, ..]
        x = jnp.moveaxis(x, axis, 0)
        x = x.reshape((N_DEV, x.shape[0] // N_DEV) + x.shape[1:])
        return jnp.moveaxis(x, 1, axis + 1)

    def per_device(shared, mapped):
        params, rep = shared
        x1, x2, xv, batch = mapped
        (loss, aux), grads = jax.value_and_grad(
            functools.partial(objective, axis_name="batch"), has_aux=True)(params, x1, x2, xv, batch, rep)
        return jax.lax.pmean((loss, aux, grads), "batch")

    # Arguments are grouped so that no top-level argument is an empty pytree:
    # jax 0.10.2's pmap misaligns in_axes after one (an empty dict mapped with
    # in_axes=0 makes the next replicated argument sharded).
    mapped = (split(x1), split(x2), {k: split(v, 1) for k, v in xv.items()}, {k: split(v) for k, v in batch.items()})
    out = jax.pmap(per_device, axis_name="batch", in_axes=(None, 0))((params, rep), mapped)
    return jax.tree.map(lambda a: a[0], out)


MODES = ["shard_map", "shard_map_no_vma", "pmap"]


@pytest.mark.parametrize("shape", [(16, 6), (8, 12)], ids=["N16M6", "N8M12"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", losses.names())
def test_multi_device_equals_global_batch(name, mode, shape):
    objective, params, data = _setup(name, *shape)
    loss, aux, grads = _single(objective, params, data)
    if mode == "pmap":
        d_loss, d_aux, d_grads = _pmapped(objective, params, data)
    else:
        d_loss, d_aux, d_grads = _sharded(objective, params, data, check_vma=(mode == "shard_map"))
    np.testing.assert_allclose(d_loss, loss, rtol=1e-5, atol=1e-6)
    for k in aux:
        np.testing.assert_allclose(d_aux[k], aux[k], rtol=1e-5, atol=1e-6, err_msg=k)
    for k in grads:
        scale = float(jnp.max(jnp.abs(grads[k])))
        assert scale > 0, f"{k}: zero gradient makes this test vacuous"
        np.testing.assert_allclose(d_grads[k], grads[k], rtol=1e-4, atol=1e-5 * scale, err_msg=k)


def test_enqueue_takes_the_global_batch():
    mesh = jax.make_mesh((N_DEV,), ("batch",))
    queue = jnp.zeros((20, 3))
    x = jnp.arange(16 * 3, dtype=jnp.float32).reshape(16, 3) + 1.0
    want = losses.enqueue(queue, x)
    got = jax.jit(jax.shard_map(lambda q, x: losses.enqueue(q, x, axis_name="batch"), mesh=mesh,
                                in_specs=(P(), P("batch")), out_specs=P()))(  # replicated result: check_vma passes
        queue, jax.device_put(x, NamedSharding(mesh, P("batch"))))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(want[:16], losses.normalize_embeddings(x), rtol=1e-6)  # newest first
    np.testing.assert_allclose(want[16:], 0.0)  # the old rows that still fit
    again = losses.enqueue(want, 2 * x[:4], normalize=False)
    np.testing.assert_allclose(again[:4], 2 * x[:4])
    np.testing.assert_allclose(again[4:], want[:16])  # oldest rows dropped


def test_dino_center_update_uses_global_batch():
    mesh = jax.make_mesh((N_DEV,), ("batch",))
    rng = np.random.default_rng(0)
    t1, t2 = (jnp.asarray(rng.normal(size=(16, 4)), jnp.float32) for _ in range(2))
    c0 = jnp.ones(4)
    want = losses.dino_center_update(c0, t1, t2, momentum=0.9)
    np.testing.assert_allclose(want, 0.9 + 0.1 * np.concatenate([t1, t2]).mean(0), rtol=1e-5)
    sh = NamedSharding(mesh, P("batch"))
    got = jax.jit(jax.shard_map(
        lambda c, a, b: jax.lax.pmean(losses.dino_center_update(c, a, b, 0.9, axis_name="batch"), "batch"),
        mesh=mesh, in_specs=(P(), P("batch"), P("batch")), out_specs=P()))(
        c0, jax.device_put(t1, sh), jax.device_put(t2, sh))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("route", ["gram", "covariance"])
@pytest.mark.parametrize("criterion", ["l_c", "l_nc"])
def test_criteria_multi_device_value_and_gradient(criterion, route):
    fn = getattr(losses, criterion)
    rng = np.random.default_rng(3)
    params = {"w": jnp.asarray(rng.normal(size=(D_IN, 6)), jnp.float32)}
    x = jnp.asarray(rng.normal(size=(16, D_IN)), jnp.float32)

    def objective(params, x1, x2, xv, batch, rep, axis_name=None):
        value = fn(_net(params["w"], x1), axis_name=axis_name, route=route)
        return value, {}

    data = (x, x, {}, {}, {})
    loss, _, grads = _single(objective, params, data)
    for mode in MODES:
        if mode == "pmap":
            d_loss, _, d_grads = _pmapped(objective, params, data)
        else:
            d_loss, _, d_grads = _sharded(objective, params, data, check_vma=(mode == "shard_map"))
        np.testing.assert_allclose(d_loss, loss, rtol=1e-5, err_msg=mode)
        np.testing.assert_allclose(d_grads["w"], grads["w"], rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(grads["w"]))),
                                   err_msg=mode)


def test_theory_helpers_and_normalisations_multi_device():
    mesh = jax.make_mesh((N_DEV,), ("batch",))
    z = jnp.asarray(np.random.default_rng(4).normal(size=(16, 6)) * 2 + 1, jnp.float32)
    want = (losses.duality_terms(z), losses.norm_coupling_bounds(z),
            losses.center_dimensions(z), losses.standardize_dimensions(z))

    def per_device(z):
        scalars = jax.lax.pmean((losses.duality_terms(z, "batch"), losses.norm_coupling_bounds(z, "batch")), "batch")
        return scalars + (losses.center_dimensions(z, "batch"), losses.standardize_dimensions(z, "batch"))

    got = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=P("batch"),
                                out_specs=(P(), P(), P("batch"), P("batch"))))(
        jax.device_put(z, NamedSharding(mesh, P("batch"))))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_online_probe_loss_multi_device(mode):
    """The online probe (with unlabelled rows, label -1) follows the same exactness rule."""
    from duality import probe

    rng = np.random.default_rng(5)
    labels = jnp.asarray(rng.integers(-1, 4, size=(16,)), jnp.int32)
    params = {"w": jnp.asarray(rng.normal(size=(D_IN, 4)), jnp.float32), "b": jnp.zeros((4,), jnp.float32)}
    x = jnp.asarray(rng.normal(size=(16, D_IN)), jnp.float32)

    def objective(params, x1, x2, xv, batch, rep, axis_name=None):
        loss, logits = probe.online_loss(params, x1, batch["labels"], axis_name)
        return loss, {"top1": probe.online_accuracy(logits, batch["labels"], axis_name)}

    data = (x, x, {}, {"labels": labels}, {})
    loss, aux, grads = _single(objective, params, data)
    lab = np.asarray(labels)
    logits = np.asarray(x) @ np.asarray(params["w"])
    ce = -(logits - np.log(np.exp(logits).sum(1, keepdims=True)))[np.arange(16), np.maximum(lab, 0)]
    np.testing.assert_allclose(loss, ce[lab >= 0].mean(), rtol=1e-5)  # mean over labelled rows only
    if mode == "pmap":
        d_loss, d_aux, d_grads = _pmapped(objective, params, data)
    else:
        d_loss, d_aux, d_grads = _sharded(objective, params, data, check_vma=(mode == "shard_map"))
    np.testing.assert_allclose(d_loss, loss, rtol=1e-5)
    np.testing.assert_allclose(d_aux["top1"], aux["top1"], rtol=1e-6)
    np.testing.assert_allclose(d_grads["w"], grads["w"], rtol=1e-4, atol=1e-6)
