"""oneDNN's convolutions and batch normalization inside XLA:CPU programs, through jax.ffi custom calls.

Why: timed alone with a random output gradient, XLA:CPU's own convolution
(Eigen's spatial convolution; jaxlib 0.10.2 has no other multi-threaded
kernel, and its oneDNN flags compile to the same call) is 1.3-1.5x oneDNN's on
ResNet-18's 64->64 layer, forward and both gradients (docs/performance.md,
fourth round); oneDNN is what PyTorch's CPU convolutions run. The three
passes of a convolution are three custom calls (conv.cc); `models/conv.py`
wires them into a `jax.custom_vjp` and uses them where `available()`.
BatchNorm (+ ReLU) in training mode is two more (batchnorm.cc, `batch_norm`
below): forward + backward on ResNet-18's 256x28x28x64 activation took 11.5
ms against XLA's 16.8 (benchmarks/batchnorm.py; docs/performance.md, eighth round); `models/norm.py`
uses it where the batch statistics are one device's.

The library is built on first use from conv.cc and batchnorm.cc with the system's C++
compiler against oneDNN 3 -- the `onednn-devel-cpu-gomp` wheel of the `cpu`
extra (headers and libdnnl.so.3 under the Python environment's prefix, GNU
OpenMP, no other dependency), or the one under $DUALITY_ONEDNN_ROOT -- and
jaxlib's FFI headers, into `$DUALITY_CACHE` (default ~/.cache/duality), keyed
by the source, the oneDNN and the jax version, so a second process only
loads it. Debian 12's libdnnl-dev is oneDNN 2.6: its older backward kernels
made ResNet-18's step about 1.08x slower than 3.2's, so it is not used. Without a
compiler or oneDNN 3, `available()` is False and the models keep XLA's
convolutions and BatchNorm: nothing else changes. Opt out with DUALITY_ONEDNN=0.

Each call also returns a workspace (the reordered kernel and oneDNN's
scratchpad) that XLA allocates with the program's other intermediates;
`_workspace_bytes` asks the library its size while tracing. Nothing is
allocated inside a call (conv.cc says why).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import site
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

_SOURCES = tuple(os.path.join(os.path.dirname(os.path.abspath(__file__)), f) for f in ("conv.cc", "batchnorm.cc"))
TARGETS = ("duality_onednn_conv_fwd", "duality_onednn_conv_bwd_data", "duality_onednn_conv_bwd_weights",
           "duality_onednn_bn_fwd", "duality_onednn_bn_bwd")
_state: dict = {}


def _onednn_root() -> str | None:
    """The prefix holding oneDNN's headers (include/oneapi/dnnl/) and lib/libdnnl.so, if any."""
    # the environment's prefix for a venv or system install; the user base for `pip install --user`
    for root in (os.environ.get("DUALITY_ONEDNN_ROOT"), sys.prefix, site.getuserbase()):
        if root and os.path.exists(os.path.join(root, "include", "oneapi", "dnnl", "dnnl_version.h")) \
                and os.path.exists(os.path.join(root, "lib", "libdnnl.so")):
            return root
    return None


def _library_path(root: str) -> str:
    h = hashlib.sha256()
    for name in _SOURCES + (os.path.join(root, "include", "oneapi", "dnnl", "dnnl_version.h"),):
        with open(name, "rb") as f:
            h.update(f.read())
    digest = hashlib.sha256(h.digest() + root.encode() + jax.__version__.encode()).hexdigest()[:16]
    cache = os.environ.get("DUALITY_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "duality"))
    return os.path.join(cache, f"libduality_onednn_{digest}.so")


def _build(path: str, root: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    lib = os.path.join(root, "lib")
    cmd = [os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{os.path.join(root, 'include')}",
           f"-I{jax.ffi.include_dir()}", *_SOURCES, f"-L{lib}", f"-Wl,-rpath,{lib}", "-ldnnl", "-o", tmp]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(tmp, path)  # atomic: concurrent builders never load a half-written library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def available() -> bool:
    """Whether oneDNN's convolutions are registered with XLA:CPU in this process (built on first call)."""
    if "ok" in _state:
        return _state["ok"]
    _state["ok"] = False
    if os.environ.get("DUALITY_ONEDNN", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    root = _onednn_root()
    if root is None:
        _state["error"] = ("oneDNN 3 not found (pip install onednn-devel-cpu-gomp, the `cpu` extra, "
                           "or set DUALITY_ONEDNN_ROOT)")
        return False
    try:
        path = _library_path(root)
        if not os.path.exists(path):
            _build(path, root)
        lib = ctypes.cdll.LoadLibrary(path)
        for name in TARGETS:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
        size = lib.duality_onednn_workspace_bytes
        size.argtypes, size.restype = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int32], ctypes.c_int64
        _state["workspace_bytes"] = size
        bn_size = lib.duality_onednn_bn_bytes
        bn_size.argtypes, bn_size.restype = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64)], ctypes.c_int32
        _state["bn_bytes"] = bn_size
    except (OSError, subprocess.CalledProcessError, AttributeError) as e:
        _state["error"] = getattr(e, "stderr", None) or str(e)
        return False
    _state["ok"] = True
    return True


def why_not() -> str:
    """The build or load error when `available()` is False."""
    return _state.get("error", "")


def _attrs(stride, padding):
    return dict(sh=np.int64(stride[0]), sw=np.int64(stride[1]), ph=np.int64(padding[0]), pw=np.int64(padding[1]))


def _varying(x) -> frozenset:
    """The shard_map axes `x` varies over (jax 0.10's `aval.mat.varying`; `aval.vma` in some other versions)."""
    aval = jax.typeof(x)
    mat = getattr(aval, "mat", None)
    return frozenset(getattr(mat, "varying", None) or getattr(aval, "vma", None) or ())


def _varying_as(y, *inputs):
    """A custom call's result carries no shard_map axis types: give it its inputs' (varying) ones."""
    missing = tuple(sorted(frozenset().union(*(_varying(a) for a in inputs)) - _varying(y)))
    return jax.lax.pcast(y, missing, to="varying") if missing else y


def _cotangent_as(ct, primal):
    """A cotangent typed like its primal under shard_map: summed over the axes the primal is invariant along.

    A parameter passed into `shard_map` unvaried (the same on every device) receives the sum of each
    device's gradient, the transpose of broadcasting it; a varying one keeps its own.
    """
    extra = tuple(sorted(_varying(ct) - _varying(primal)))
    return _varying_as(jax.lax.psum(ct, extra) if extra else ct, primal)


def _workspace_bytes(pass_, n, h, w, c, o, kh, kw, stride, padding, ho, wo) -> int:
    key = (ctypes.c_int64 * 13)(n, h, w, c, o, kh, kw, stride[0], stride[1], padding[0], padding[1], ho, wo)
    size = _state["workspace_bytes"](key, pass_)
    if size < 0:
        raise ValueError(f"oneDNN has no convolution for input {(n, h, w, c)}, kernel {(kh, kw, c, o)}, "
                         f"stride {tuple(stride)}, padding {tuple(padding)}")
    return max(int(size), 1)


def _call(target, pass_, result, a, b, stride, padding, x_shape, w_shape, y_shape):
    n, h, wd, c = x_shape
    kh, kw, _, o = w_shape
    ws = _workspace_bytes(pass_, n, h, wd, c, o, kh, kw, stride, padding, y_shape[1], y_shape[2])
    out, _ = jax.ffi.ffi_call(target, (result, jax.ShapeDtypeStruct((ws,), np.uint8)))(
        a, b, **_attrs(stride, padding))
    return out


def conv_fwd(x, w, stride, padding):
    n, h, wd, _ = x.shape
    kh, kw, _, o = w.shape
    ho, wo = (h + 2 * padding[0] - kh) // stride[0] + 1, (wd + 2 * padding[1] - kw) // stride[1] + 1
    out = jax.ShapeDtypeStruct((n, ho, wo, o), x.dtype)
    return _varying_as(_call(TARGETS[0], 0, out, x, w, stride, padding, x.shape, w.shape, out.shape), x, w)


def conv_bwd_data(g, w, x_shape, stride, padding):
    """The input gradient; under shard_map the caller gives it the input's axis types (`_varying_as`)."""
    out = jax.ShapeDtypeStruct(x_shape, g.dtype)
    return _call(TARGETS[1], 1, out, g, w, stride, padding, x_shape, w.shape, g.shape)


def conv_bwd_weights(x, g, w_shape, stride, padding):
    """The kernel gradient; under shard_map the caller gives it the kernel's axis types (`_varying_as`)."""
    out = jax.ShapeDtypeStruct(w_shape, g.dtype)
    return _call(TARGETS[2], 2, out, x, g, stride, padding, x.shape, w_shape, g.shape)


def _bn_bytes(shape, relu: bool, epsilon: float):
    """Bytes of the relu mask and of the forward and backward scratchpads (each at least 1)."""
    bits = int(np.asarray(epsilon, np.float32).view(np.uint32))
    key = (ctypes.c_int64 * 6)(*shape, int(relu), bits)
    out = (ctypes.c_int64 * 3)()
    if _state["bn_bytes"](key, out) != 0:
        raise ValueError(f"oneDNN has no batch normalization for an NHWC float32 input of shape {tuple(shape)}")
    return [max(int(v), 1) for v in out]


def _value(a):
    return getattr(a, "value", a)  # a CustomVJPPrimal under symbolic zeros


def _bn_call(x, scale, shift, epsilon, relu):
    c = x.shape[-1]
    mask_bytes, fwd_bytes, _ = _bn_bytes(x.shape, relu, epsilon)
    stat = jax.ShapeDtypeStruct((c,), np.float32)
    y, mean, var, mask, _ = jax.ffi.ffi_call(
        "duality_onednn_bn_fwd", (jax.ShapeDtypeStruct(x.shape, np.float32), stat, stat,
                                  jax.ShapeDtypeStruct((mask_bytes,), np.uint8),
                                  jax.ShapeDtypeStruct((fwd_bytes,), np.uint8)))(
        x, scale, shift, relu=np.int64(relu), eps=np.float32(epsilon))
    return tuple(_varying_as(t, x, scale, shift) for t in (y, mean, var)), mask


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def batch_norm(x, scale, shift, epsilon: float, relu: bool):
    """Training-mode BatchNorm (+ ReLU) of an NHWC float32 `x` over its own batch: (y, mean, biased var).

    y = scale * (x - mean) / sqrt(var + epsilon) + shift, then max(y, 0) when `relu`. The gradient is the
    full one through the batch statistics (batchnorm.cc); the statistics are this call's alone, so under
    data parallelism it is SyncBatchNorm only over one device (models/norm.py decides when it applies).
    """
    return _bn_call(x, scale, shift, epsilon, relu)[0]


def _bn_fwd(x, scale, shift, epsilon, relu):
    x, scale, shift = _value(x), _value(scale), _value(shift)
    out, mask = _bn_call(x, scale, shift, epsilon, relu)
    return out, (x, out[1], out[2], scale, shift, mask)


def _bn_bwd(epsilon, relu, res, cts):
    x, mean, var, scale, shift, mask = res
    gy, gmean, gvar = cts
    zero = jax.custom_derivatives.SymbolicZero
    if isinstance(gy, zero):
        gy = jnp.zeros(x.shape, x.dtype)
    c = x.shape[-1]
    _, _, bwd_bytes = _bn_bytes(x.shape, relu, epsilon)
    stat = jax.ShapeDtypeStruct((c,), np.float32)
    dx, dscale, dshift, _ = jax.ffi.ffi_call(
        "duality_onednn_bn_bwd", (jax.ShapeDtypeStruct(x.shape, np.float32), stat, stat,
                                  jax.ShapeDtypeStruct((bwd_bytes,), np.uint8)))(
        x, gy, mean, var, scale, mask, relu=np.int64(relu), eps=np.float32(epsilon))
    # The statistics are outputs too (for running averages, normally not differentiated): their exact terms,
    # d mean / dx = 1/m and d var / dx = 2 (x - mean) / m, are added only when a cotangent reaches them.
    m = x.size // c
    if not isinstance(gmean, zero):
        dx = dx + gmean / m
    if not isinstance(gvar, zero):
        dx = dx + gvar * (2.0 / m) * (x - mean)
    # the call's results carry no shard_map axis types: each device's own first, then typed like the primals
    dx, dscale, dshift = (_varying_as(t, x, gy) for t in (dx, dscale, dshift))
    return _cotangent_as(dx, x), _cotangent_as(dscale, scale), _cotangent_as(dshift, shift)


batch_norm.defvjp(_bn_fwd, _bn_bwd, symbolic_zeros=True)
