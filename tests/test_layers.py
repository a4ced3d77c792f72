"""The models' own Conv and BatchNorm (issue 14) against XLA's convolution and flax's BatchNorm.

Both were rewritten for speed on CPU; these tests hold them to the functions
they replace: convolution gradients equal to XLA's own (lax.conv's transpose
rules) for every kernel, stride and padding the encoders use and some they do
not (odd sizes, 1x1 stride 2, 7x7 stride 2), and a BatchNorm equal to
`flax.linen.BatchNorm` in outputs, gradients, running statistics, bf16 compute
and across devices (statistics over the global batch), with the same
parameter names so checkpoints load either way.
"""
import functools
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from duality import runtime
from duality.models import conv as C
from duality.models.norm import BatchNorm


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize("shape,k,s,p,cout", [
    ((4, 28, 28, 1), 3, 1, 1, 8),     # the small convnet's first layer
    ((4, 28, 28, 8), 3, 2, 1, 16),    # its stride-2 layers
    ((3, 7, 7, 16), 3, 2, 1, 8),      # odd size, stride 2
    ((2, 9, 11, 5), 3, 2, 1, 4),      # non-square, odd channels
    ((2, 8, 8, 6), 1, 2, 0, 12),      # ResNet's 1x1 stride-2 projection
    ((2, 8, 8, 6), 1, 1, 0, 4),       # Bottleneck's 1x1
    ((2, 16, 16, 3), 7, 2, 3, 8),     # ImageNet stem
    ((2, 10, 10, 4), 3, 3, 1, 5),     # a stride the models never use
    ((2, 6, 6, 4), 5, 1, 2, 3),
])
def test_dot_gradients_equal_xla(shape, k, s, p, cout):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(k, k, shape[-1], cout)).astype(np.float32))
    t = None
    outs = {}
    for how in ("xla", "dot", "mixed"):
        f = functools.partial(C.conv2d, stride=(s, s), padding=(p, p), backward=how)
        y = f(x, w)
        if t is None:
            t = jnp.asarray(rng.normal(size=y.shape).astype(np.float32))  # a non-uniform cotangent
        outs[how] = (y, *jax.grad(lambda x, w: jnp.sum(f(x, w) * t), argnums=(0, 1))(x, w))
    for how in ("dot", "mixed"):
        for a, b, what in zip(outs[how], outs["xla"], ("output", "input gradient", "weight gradient")):
            assert a.shape == b.shape, (how, what)
            assert _rel(a, b) < 2e-6, (how, what, _rel(a, b))


def test_patches_and_col2im_are_adjoint():
    """<patches(x), c> = <x, col2im(c)>: col2im is exactly the transpose the backward pass needs."""
    rng = np.random.default_rng(1)
    for shape, k, s, p in [((2, 9, 9, 3), 3, 2, 1), ((2, 8, 8, 2), 1, 2, 0), ((1, 12, 10, 2), 7, 2, 3)]:
        x = rng.normal(size=shape)
        cols = np.asarray(C.patches(jnp.asarray(x), (k, k), (s, s), (p, p)))
        c = rng.normal(size=cols.shape)
        back = np.asarray(C.col2im(jnp.asarray(c), shape, (k, k), (s, s), (p, p)))
        np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-5)


def test_conv_module_keeps_flax_parameters_and_init():
    x = jnp.ones((2, 12, 12, 3))
    for backward in ("dot", "xla", "mixed", "auto"):
        ours = C.conv(8, (3, 3), (2, 2), padding=1, backward=backward)
        theirs = nn.Conv(8, (3, 3), (2, 2), padding=1, use_bias=False, kernel_init=C.conv_init)
        a, b = ours.init(jax.random.key(3), x), theirs.init(jax.random.key(3), x)
        assert jax.tree.structure(a) == jax.tree.structure(b)
        np.testing.assert_array_equal(a["params"]["kernel"], b["params"]["kernel"])
        np.testing.assert_allclose(ours.apply(a, x), theirs.apply(b, x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="backward"):
        C.conv2d(x, a["params"]["kernel"], backward="fast")


@pytest.mark.parametrize("xla_flags,strided,plain", [
    ("--xla_cpu_experimental_ynn_fusion_type=reduce", "dot", "xla"),    # runtime.tune_xla_cpu in effect
    ("", "dot", "dot"),                                                  # XLA's defaults (DUALITY_XLA=default)
])
def test_auto_follows_how_xla_runs_convolutions(monkeypatch, xla_flags, strided, plain):
    """Without oneDNN, "auto" picks per layer from which gradients XLA:CPU runs faster under the process's flags."""
    monkeypatch.setenv("XLA_FLAGS", xla_flags)
    monkeypatch.setattr(C, "_onednn_ok", lambda dtype: False)
    cpu = jax.default_backend() == "cpu"
    assert C.resolve("auto", (256, 28, 28, 32), (3, 3), (2, 2), (1, 1), 4) == (strided if cpu else "xla")
    assert C.resolve("auto", (256, 28, 28, 64), (3, 3), (1, 1), (1, 1), 4) == (plain if cpu else "xla")
    assert C.resolve("auto", (256, 224, 224, 3), (7, 7), (2, 2), (3, 3), 4) == "xla"  # 1.9 GB of patches
    assert C.resolve("dot", (256, 224, 224, 3), (7, 7), (2, 2), (3, 3), 4) == "dot"  # asked for explicitly
    assert C.resolve("mixed", (256, 28, 28, 64), (3, 3), (1, 1), (1, 1), 4) == "mixed"


def _onednn():
    from duality.models import onednn
    if jax.default_backend() != "cpu" or not onednn.available():
        pytest.skip(f"oneDNN convolutions not available here: {onednn.why_not() or 'not a CPU backend'}")
    return onednn


def test_auto_says_once_when_cpu_convolutions_fall_back_to_xla(monkeypatch, caplog):
    """Without oneDNN (no `cpu` extra, no compiler) training still runs, 1.5x slower: the user is told why, once."""
    if jax.default_backend() != "cpu":
        pytest.skip("CPU only")
    from duality.models import onednn
    monkeypatch.setattr(onednn, "available", lambda: False)
    monkeypatch.setattr(onednn, "why_not", lambda: "oneDNN 3 not found (pip install onednn-devel-cpu-gomp)")
    monkeypatch.setattr(C, "_warned", [])
    monkeypatch.delenv("DUALITY_ONEDNN", raising=False)
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert C.resolve("auto", (256, 28, 28, 64), (3, 3), (1, 1), (1, 1), 4) != "onednn"
    said = [r.getMessage() for r in caplog.records if "XLA's own kernels" in r.getMessage()]
    assert len(said) == 1 and "onednn-devel-cpu-gomp" in said[0]


def test_auto_picks_onednn_for_float32_on_cpu():
    _onednn()
    assert C.resolve("auto", (256, 28, 28, 64), (3, 3), (1, 1), (1, 1), 4) == "onednn"
    assert C.resolve("auto", (256, 28, 28, 32), (3, 3), (2, 2), (1, 1), 4) == "onednn"
    assert C.resolve("auto", (256, 28, 28, 64), (3, 3), (1, 1), (1, 1), 2) != "onednn"  # bfloat16: XLA's


# every convolution shape the encoders have: stems, 3x3 stride 1 and 2, 1x1 stride-2 projections, odd sizes
ONEDNN_SHAPES = [((4, 28, 28, 1), (3, 3, 1, 32), 1, 1), ((4, 28, 28, 32), (3, 3, 32, 64), 2, 1),
                 ((4, 7, 7, 128), (3, 3, 128, 256), 2, 1), ((3, 9, 9, 16), (3, 3, 16, 24), 1, 1),
                 ((2, 4, 4, 64), (3, 3, 64, 64), 1, 1), ((4, 14, 14, 16), (1, 1, 16, 32), 2, 0),
                 ((2, 15, 15, 3), (7, 7, 3, 16), 2, 3), ((2, 13, 13, 8), (3, 3, 8, 8), 2, 1)]


@pytest.mark.parametrize("x_shape,w_shape,stride,pad", ONEDNN_SHAPES)
def test_onednn_convolution_and_gradients_equal_xla(x_shape, w_shape, stride, pad):
    """oneDNN's forward, input and weight gradients against lax.conv's and its autodiff, random output gradient."""
    _onednn()
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=x_shape).astype(np.float32))
    w = jnp.asarray(rng.normal(size=w_shape).astype(np.float32) * 0.2)
    s, p = (stride, stride), (pad, pad)
    y_ref, pull = jax.vjp(lambda a, b: C._xla(a, b, s, p), x, w)
    g = jnp.asarray(rng.normal(size=y_ref.shape).astype(np.float32))
    y, pull_ours = jax.vjp(lambda a, b: C.conv2d(a, b, s, p, backward="onednn"), x, w)
    for ours, ref in zip((y, *jax.jit(pull_ours)(g)), (y_ref, *pull(g))):
        assert ours.shape == ref.shape
        assert _rel(ours, ref) < 2e-5


def test_onednn_convolutions_run_concurrently_inside_one_program():
    """Independent convolutions XLA starts at the same time from its threads give each its own result.

    oneDNN's default scratchpad is shared by every primitive of the process; two calls at once corrupted each
    other (a different first training loss, and stalls) until each call got its own, now inside the workspace
    XLA allocates for the call (conv.cc).
    """
    _onednn()
    rng = np.random.default_rng(8)
    xs = [jnp.asarray(rng.normal(size=(16, 14, 14, 32)).astype(np.float32)) for _ in range(6)]
    ws = [jnp.asarray(rng.normal(size=(3, 3, 32, c)).astype(np.float32)) for c in (32, 48, 64, 32, 48, 64)]

    def many(f):
        return jax.jit(lambda xs, ws: [f(x, w) for x, w in zip(xs, ws)])(xs, ws)

    ours = many(lambda x, w: C.conv2d(x, w, (1, 1), (1, 1), backward="onednn"))
    ref = many(lambda x, w: C._xla(x, w, (1, 1), (1, 1)))
    for _ in range(3):
        for a, b in zip(ours, ref):
            assert _rel(a, b) < 2e-5
        ours = many(lambda x, w: C.conv2d(x, w, (1, 1), (1, 1), backward="onednn"))


def test_onednn_workspaces_are_xla_intermediates():
    """Each pass's workspace (reordered kernel + oneDNN scratchpad) is part of the program's temporary memory.

    oneDNN allocating per call from the never-trimmed heap grew ResNet-18's process by 1.8 GB every few
    steps; now XLA places the workspace with its other intermediates, so its size shows in the compiled
    program's memory analysis and a call leaves the heap alone.
    """
    onednn = _onednn()
    x = jnp.zeros((8, 14, 14, 64), jnp.float32)
    w = jnp.zeros((3, 3, 64, 64), jnp.float32)
    g = jnp.zeros((8, 14, 14, 64), jnp.float32)
    s, p = (1, 1), (1, 1)
    for pass_, f in enumerate((lambda: onednn.conv_fwd(x, w, s, p),
                               lambda: onednn.conv_bwd_data(g, w, x.shape, s, p),
                               lambda: onednn.conv_bwd_weights(x, g, w.shape, s, p))):
        ws = onednn._workspace_bytes(pass_, 8, 14, 14, 64, 64, 3, 3, s, p, 14, 14)
        assert ws >= 1
        temp = jax.jit(f).lower().compile().memory_analysis().temp_size_in_bytes
        assert temp >= ws, (pass_, temp, ws)
    with pytest.raises(ValueError, match="no convolution"):  # a kernel larger than the padded input
        onednn._workspace_bytes(0, 1, 2, 2, 4, 4, 5, 5, s, (0, 0), -2, -2)


def test_onednn_convolution_under_shard_map_equals_one_device():
    """In the data-parallel step each device's custom call sees its own shard; gradients summed over devices."""
    _onednn()
    n_dev = jax.device_count()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(2 * n_dev, 10, 10, 8)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(3, 3, 8, 16)).astype(np.float32))

    def loss(w, x):
        return jnp.sum(jnp.square(C.conv2d(x, w, (2, 2), (1, 1), backward="onednn")))

    def per_device(w, x):
        return jax.lax.psum(jax.grad(loss)(jax.lax.pcast(w, "data", to="varying"), x), "data")

    sharded = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P("data")), out_specs=P()))(w, x)
    one = jax.grad(lambda w: jnp.sum(jnp.square(C._xla(x, w, (2, 2), (1, 1)))))(w)
    assert _rel(sharded, one) < 2e-5
    # a kernel passed in unvaried: its gradient is the same on every device, the sum of the devices' own
    unvaried = jax.jit(jax.shard_map(jax.grad(loss), mesh=mesh, in_specs=(P(), P("data")), out_specs=P()))(w, x)
    assert _rel(unvaried, one) < 2e-5


def _flax_bn(**kw):
    return nn.BatchNorm(momentum=0.9, epsilon=1e-5, **kw)


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_equals_flax(affine):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(16, 5, 5, 6)).astype(np.float32) * 3 + 1)
    t = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
    ours, theirs = BatchNorm(use_scale=affine, use_bias=affine), _flax_bn(use_scale=affine, use_bias=affine)
    v = theirs.init(jax.random.key(0), x, use_running_average=False)
    assert jax.tree.structure(ours.init(jax.random.key(0), x)) == jax.tree.structure(v)
    if affine:  # non-trivial parameters and statistics
        v = {"params": {"scale": jnp.linspace(0.5, 2, 6), "bias": jnp.linspace(-1, 1, 6)},
             "batch_stats": {"mean": jnp.full(6, 0.3), "var": jnp.full(6, 2.0)}}

    def run(m, train, **kw):
        def f(x, params):
            y, upd = m.apply({**v, "params": params} if affine else v, x, mutable=["batch_stats"], **kw)
            return jnp.sum(y * t), (y, upd)
        (_, (y, upd)), g = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(x, v.get("params", {}))
        return y, upd, g

    for train in (True, False):
        a = run(BatchNorm(use_running_average=not train, use_scale=affine, use_bias=affine), train)
        b = run(_flax_bn(use_running_average=not train, use_scale=affine, use_bias=affine), train)
        for u, w in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            assert _rel(u, w) < 1e-5


def test_batchnorm_initialisation_leaves_statistics_alone():
    x = jnp.full((4, 3), 7.0)
    v = BatchNorm().init(jax.random.key(0), x)
    np.testing.assert_array_equal(v["batch_stats"]["mean"], 0.0)
    np.testing.assert_array_equal(v["batch_stats"]["var"], 1.0)


def test_batchnorm_bfloat16_matches_flax():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(32, 8)).astype(np.float32)).astype(jnp.bfloat16)
    ours, theirs = BatchNorm(dtype=jnp.bfloat16), _flax_bn(dtype=jnp.bfloat16, use_running_average=False)
    v = theirs.init(jax.random.key(0), x)
    ya, sa = ours.apply(v, x, mutable=["batch_stats"])
    yb, sb = theirs.apply(v, x, mutable=["batch_stats"])
    assert ya.dtype == yb.dtype == jnp.bfloat16
    assert sa["batch_stats"]["mean"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(ya, np.float32), np.asarray(yb, np.float32), atol=0.02)
    np.testing.assert_allclose(sa["batch_stats"]["var"], sb["batch_stats"]["var"], rtol=1e-5)


def test_sync_batchnorm_over_devices_equals_the_global_batch():
    n = jax.device_count()
    if n < 2:
        pytest.skip("needs several devices (tests/conftest.py sets 8 CPU devices)")
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(4 * n, 3, 3, 5)).astype(np.float32) * 2 - 1)
    t = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
    v = BatchNorm().init(jax.random.key(0), x)
    v = {"params": {"scale": jnp.linspace(0.5, 2, 5), "bias": jnp.linspace(-1, 1, 5)}, "batch_stats": v["batch_stats"]}

    def loss(m, params, x, t):  # m: ours or flax's
        y, upd = m.apply({"params": params, "batch_stats": v["batch_stats"]}, x, mutable=["batch_stats"])
        return jnp.sum(y * t), upd

    one = jax.grad(lambda p: loss(BatchNorm(), p, x, t), has_aux=True)(v["params"])
    mesh = Mesh(np.array(jax.devices()), ("data",))

    def sharded(module):
        # the gradient of replicated parameters inside shard_map is already summed over devices
        @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P(), P()))
        def f(params, x, t):
            return jax.grad(lambda p: loss(module, p, x, t), has_aux=True)(params)
        return jax.jit(f)(v["params"], x, t)

    ours, flax_bn = sharded(BatchNorm(axis_name="data")), sharded(_flax_bn(axis_name="data", use_running_average=False))
    for a, b, c in zip(jax.tree.leaves(ours), jax.tree.leaves(one), jax.tree.leaves(flax_bn)):
        assert _rel(a, b) < 1e-5 and _rel(a, c) < 1e-5


def test_tune_allocator_is_idempotent_and_can_be_turned_off(monkeypatch):
    first = runtime.tune_allocator()
    assert runtime.tune_allocator() is first  # applied once per process
    monkeypatch.setattr(runtime, "_done", None)
    monkeypatch.setenv("DUALITY_ALLOCATOR", "system")
    assert runtime.tune_allocator() is False
    monkeypatch.setattr(runtime, "_done", None)
    monkeypatch.delenv("DUALITY_ALLOCATOR")
    assert runtime.tune_allocator() is first  # on again when the variable is gone


_KEEPS_HEAP = """
import ctypes, sys
from duality import runtime
tuned = runtime.tune_allocator() if sys.argv[1] == "tuned" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
p = libc.malloc(2_400_000_000)  # untouched: no page is faulted in
libc.free(p)
print(int(tuned), libc.mallinfo2().arena)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
@pytest.mark.parametrize("mode", ["tuned", "system"])
def test_tuned_allocator_keeps_a_freed_heap_above_2_gib(mode):
    """A step that frees more than 2 GiB at once (ResNet-18 at batch 256 x 2 frees 2.27 GB) keeps its pages.

    With M_TRIM_THRESHOLD at 2**31 - 1 glibc still returned such a heap to the kernel after every step and
    the next step faulted it in again (docs/performance.md, fourth round); only -1 turns trimming off.
    """
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env.pop("DUALITY_ALLOCATOR", None)
    out = subprocess.run([sys.executable, "-c", _KEEPS_HEAP, mode], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    tuned, arena = int(out[0]), int(out[1])
    if mode == "tuned":
        assert tuned == 1 and arena >= 2_400_000_000  # the freed block stays in the heap for the next step
    else:
        assert arena < 2_400_000_000  # glibc's default: mmap'ed and unmapped (the check can fail)


def test_tune_xla_cpu_keeps_ynnpack_for_reductions_only(monkeypatch):
    """conftest applied it before jax started: convolutions and products go to XLA's multi-threaded kernels."""
    if os.environ.get("DUALITY_XLA") == "default" or f"{runtime.YNN_FLAG}=reduce" not in os.environ.get(
            "XLA_FLAGS", runtime.YNN_FLAG):
        pytest.skip("the suite runs with XLA's defaults or the user's own YNNPACK setting")
    assert runtime.tune_xla_cpu() is True
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    conv = jax.jit(lambda x, w: C.conv2d(x, w, padding=(1, 1), backward="xla")).lower(x, w).compile().as_text()
    big = jnp.ones((64, 28, 28, 32))  # a BatchNorm's moments: small reductions are XLA's own loops either way
    total = jax.jit(lambda x: jnp.sum(x * x, axis=(0, 1, 2))).lower(big).compile().as_text()
    if jax.default_backend() == "cpu":
        assert "__ynn_fusion" not in conv and "convolution(" in conv
        assert "__ynn_fusion" in total
    # The backend has started: a process without the flag cannot get it now, and says so.
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    assert runtime.tune_xla_cpu() is False
    assert runtime.YNN_FLAG not in os.environ["XLA_FLAGS"]
    monkeypatch.setenv("XLA_FLAGS", f"{runtime.YNN_FLAG}=individual_dot")  # the user's own choice is kept
    assert runtime.tune_xla_cpu() is False and os.environ["XLA_FLAGS"] == f"{runtime.YNN_FLAG}=individual_dot"
