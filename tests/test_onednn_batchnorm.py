"""oneDNN's training-mode BatchNorm (+ ReLU) against a float64 reference, XLA's module and the data-parallel step.

models/onednn/batchnorm.cc computes the statistics, the normalization, the fused ReLU and the full backward
pass in two library calls; models/norm.py uses it where the batch statistics are one device's own. These
tests check the function (value and gradient, written out independently below in float64), the module's
choice and its statistics, and that nothing changes beyond float32 round-off when it is swapped for XLA's.
"""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from duality.models.norm import BatchNorm

EPS = 1e-5


def _onednn():
    from duality.models import onednn
    if jax.default_backend() != "cpu" or not onednn.available():
        pytest.skip(f"oneDNN not available here: {onednn.why_not() or 'not a CPU backend'}")
    return onednn


def _reference(x, scale, shift, g, relu):
    """Float64: y, mean, biased var, and the gradients of sum(y * g) with respect to x, scale and shift.

    With xhat = (x - mean) / s, s = sqrt(var + eps) and u = g * [y > 0] (u = g without the ReLU):
      d shift = sum u,  d scale = sum u * xhat,
      d x = scale / s * (u - mean(u) - xhat * mean(u * xhat))   (means over N, H, W per channel).
    """
    x, scale, shift, g = (np.asarray(a, np.float64) for a in (x, scale, shift, g))
    axes = (0, 1, 2)
    mean = x.mean(axes)
    var = ((x - mean) ** 2).mean(axes)
    s = np.sqrt(var + EPS)
    xhat = (x - mean) / s
    pre = scale * xhat + shift
    y = np.maximum(pre, 0.0) if relu else pre
    u = g * (pre > 0) if relu else g
    dshift = u.sum(axes)
    dscale = (u * xhat).sum(axes)
    dx = scale / s * (u - u.mean(axes) - xhat * (u * xhat).mean(axes))
    sizes = np.abs(u).sum(axes), np.abs(u * xhat).sum(axes)  # what the sums' round-off scales with
    return y, mean, var, dx, dscale, dshift, pre, sizes


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = rng.normal(size=shape).astype(np.float32) * 2 + 0.7
    scale = rng.uniform(0.5, 1.5, c).astype(np.float32)
    shift = rng.normal(size=c).astype(np.float32) * 0.3
    g = rng.normal(size=shape).astype(np.float32)
    return x, scale, shift, g


# the encoders' shapes (ResNet-18 and the small convnet at 28x28), odd sizes, channels not a multiple of 16
SHAPES = [(8, 28, 28, 32), (4, 14, 14, 128), (4, 7, 7, 256), (4, 4, 4, 512), (3, 5, 7, 6), (2, 9, 9, 24),
          (1, 1, 1, 8), (5, 3, 3, 1)]


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_onednn_batchnorm_value_and_gradient_equal_float64_reference(shape, relu):
    onednn = _onednn()
    x, scale, shift, g = _inputs(shape, sum(shape) + relu)
    y_ref, mean_ref, var_ref, dx_ref, dscale_ref, dshift_ref, pre, (size_shift, size_scale) = \
        _reference(x, scale, shift, g, relu)
    (y, mean, var), pull = jax.vjp(lambda a, b, c: onednn.batch_norm(a, b, c, EPS, relu), x, scale, shift)
    dx, dscale, dshift = jax.jit(pull)((jnp.asarray(g), jnp.zeros_like(mean), jnp.zeros_like(var)))
    assert y.shape == x.shape and mean.shape == var.shape == scale.shape
    for ours, ref in ((y, y_ref), (mean, mean_ref), (var, var_ref)):
        assert _rel(ours, ref) < 2e-6
    # a sum of terms that cancel is exact to round-off of the terms' magnitudes, not of the sum
    assert np.all(np.abs(np.asarray(dshift) - dshift_ref) <= 1e-6 * size_shift + 1e-7)
    assert np.all(np.abs(np.asarray(dscale) - dscale_ref) <= 1e-6 * size_scale + 1e-7)
    # an input within round-off of the ReLU's kink may fall on either side of it: leave those out of dx
    # (none are that close at these sizes and seeds, so in practice this compares every element)
    far = np.abs(pre) > 1e-4 if relu else np.ones(x.shape, bool)
    assert far.mean() > 0.99
    assert _rel(np.asarray(dx)[far], dx_ref[far]) < 2e-5


def test_onednn_batchnorm_gradient_through_its_statistics():
    """The mean and variance it returns are differentiable too (d mean/dx = 1/m, d var/dx = 2 (x - mean)/m)."""
    onednn = _onednn()
    x, scale, shift, g = _inputs((4, 5, 5, 8), 3)
    a, b = np.linspace(-1, 1, 8).astype(np.float32), np.linspace(2, 0.5, 8).astype(np.float32)

    def f(x, stats):
        y, mean, var = stats(x)
        return jnp.sum(y * g) + jnp.sum(mean * a) + jnp.sum(var * b)

    def xla_stats(x):
        mean = jnp.mean(x, (0, 1, 2))
        var = jnp.mean(jnp.square(x - mean), (0, 1, 2))
        y = jax.nn.relu((x - mean) * jax.lax.rsqrt(var + EPS) * scale + shift)
        return y, mean, var

    ours = jax.grad(f)(jnp.asarray(x), lambda x: onednn.batch_norm(x, scale, shift, EPS, True))
    ref = jax.grad(f)(jnp.asarray(x), xla_stats)
    assert _rel(ours, ref) < 2e-5


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_module_onednn_equals_xla(relu, affine):
    """The module's two paths: same output, running statistics and gradients, to float32 round-off."""
    _onednn()
    x, _, _, t = _inputs((16, 6, 6, 12), 5)
    v = BatchNorm(use_scale=affine, use_bias=affine).init(jax.random.key(0), x)
    if affine:
        v = {"params": {"scale": jnp.linspace(0.5, 2, 12), "bias": jnp.linspace(-1, 1, 12)},
             "batch_stats": {"mean": jnp.full(12, 0.3), "var": jnp.full(12, 2.0)}}

    def run(impl):
        m = BatchNorm(relu=relu, impl=impl, use_scale=affine, use_bias=affine)

        def f(x, params):
            y, upd = m.apply({**v, "params": params} if affine else v, x, mutable=["batch_stats"])
            return jnp.sum(y * t), (y, upd)
        (_, aux), g = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(x, v.get("params", {}))
        return aux, g, jax.make_jaxpr(f)(x, v.get("params", {}))

    ours, theirs, auto = run("onednn"), run("xla"), run("auto")
    assert "duality_onednn_bn_fwd" in str(ours[2]) and "duality_onednn_bn_fwd" not in str(theirs[2])
    assert "duality_onednn_bn_fwd" in str(auto[2])  # float32 NHWC on CPU, no data-parallel axis
    for a, b in zip(jax.tree.leaves(ours[:2]), jax.tree.leaves(theirs[:2])):
        assert _rel(a, b) < 2e-5


def test_module_on_a_one_device_axis_uses_onednn_and_equals_no_axis():
    """Inside shard_map over one device the statistics are that device's: oneDNN runs, results unchanged."""
    _onednn()
    x, _, _, t = _inputs((8, 5, 5, 16), 6)
    v = BatchNorm().init(jax.random.key(0), x)
    params = {"scale": jnp.linspace(0.5, 2, 16), "bias": jnp.linspace(-1, 1, 16)}

    def loss(m, p, x):
        y, upd = m.apply({"params": p, "batch_stats": v["batch_stats"]}, x, mutable=["batch_stats"])
        return jnp.sum(y * t), upd["batch_stats"]

    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    f = jax.shard_map(lambda p, x: jax.grad(lambda p: loss(BatchNorm(axis_name="data", relu=True), p, x),
                                            has_aux=True)(p),
                      mesh=mesh, in_specs=(P(), P("data")), out_specs=(P(), P()))
    assert "duality_onednn_bn_fwd" in str(jax.make_jaxpr(f)(params, x))
    sharded = jax.jit(f)(params, x)
    one = jax.grad(lambda p: loss(BatchNorm(impl="xla", relu=True), p, x), has_aux=True)(params)
    for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(one)):
        assert _rel(a, b) < 2e-5


def test_module_keeps_xla_where_onednn_cannot_apply():
    """bfloat16, several devices on the axis, inference mode: XLA's path; impl='onednn' there says why."""
    _onednn()
    x = jnp.ones((4, 3, 3, 8), jnp.float32)
    v = BatchNorm().init(jax.random.key(0), x)

    def jaxpr(m, x, **kw):
        return str(jax.make_jaxpr(lambda x: m.apply(v, x, mutable=["batch_stats"], **kw))(x))

    assert "duality_onednn" not in jaxpr(BatchNorm(dtype=jnp.bfloat16), x.astype(jnp.bfloat16))
    assert "duality_onednn" not in jaxpr(BatchNorm(use_running_average=True), x)
    assert "duality_onednn" not in jaxpr(BatchNorm(), x.reshape(36, 8))  # [N, C]: the projector's
    with pytest.raises(ValueError, match="float32 NHWC"):
        jaxpr(BatchNorm(impl="onednn", dtype=jnp.bfloat16), x.astype(jnp.bfloat16))
    with pytest.raises(ValueError, match="impl='fast'"):
        jaxpr(BatchNorm(impl="fast"), x)
    n = jax.device_count()
    if n > 1:  # tests/conftest.py sets 8 CPU devices; the all-reduced case is XLA's
        mesh = Mesh(np.array(jax.devices()), ("data",))
        xs = jnp.ones((2 * n, 3, 3, 8), jnp.float32)
        f = jax.shard_map(lambda x: BatchNorm(axis_name="data").apply(v, x, mutable=["batch_stats"])[0],
                          mesh=mesh, in_specs=P("data"), out_specs=P("data"))
        assert "duality_onednn" not in str(jax.make_jaxpr(f)(xs))
        g = jax.shard_map(lambda x: BatchNorm(axis_name="data", impl="onednn").apply(v, x, mutable=["batch_stats"])[0],
                          mesh=mesh, in_specs=P("data"), out_specs=P("data"))
        with pytest.raises(ValueError, match="one device"):
            jax.make_jaxpr(g)(xs)


def test_onednn_batchnorm_buffers_are_xla_intermediates_and_calls_run_concurrently():
    """The ReLU mask and scratchpads are program buffers; independent calls in one program stay independent."""
    onednn = _onednn()
    rng = np.random.default_rng(11)
    xs = [jnp.asarray(rng.normal(size=(8, 14, 14, c)).astype(np.float32)) for c in (32, 48, 64, 32, 48, 64)]
    ones = [jnp.ones(x.shape[-1]) for x in xs]
    mask, fwd_bytes, bwd_bytes = onednn._bn_bytes((8, 14, 14, 64), True, EPS)
    assert mask >= 8 * 14 * 14 * 64 // 8  # at least a bit per element
    temp = jax.jit(lambda x, s: onednn.batch_norm(x, s, s, EPS, True)).lower(xs[2], ones[2]).compile()
    assert temp.memory_analysis().temp_size_in_bytes >= mask + fwd_bytes

    def many(f):
        return jax.jit(lambda xs: [jax.grad(lambda x: jnp.sum(jnp.sin(f(x, s, s))))(x) for x, s in zip(xs, ones)])(xs)

    ours = many(lambda x, s, b: onednn.batch_norm(x, s, b, EPS, True)[0])
    ref = many(lambda x, s, b: BatchNorm(impl="xla", relu=True).apply(
        {"params": {"scale": s, "bias": b}, "batch_stats": {"mean": 0 * s, "var": s}}, x, mutable=["batch_stats"])[0])
    for _ in range(3):
        for a, b in zip(ours, ref):
            assert _rel(a, b) < 2e-5
        ours = many(lambda x, s, b: onednn.batch_norm(x, s, b, EPS, True)[0])
