"""oneDNN's convolutions inside XLA:CPU programs, through jax.ffi custom calls.

Why: timed alone with a random output gradient, XLA:CPU's own convolution
(Eigen's spatial convolution; jaxlib 0.10.2 has no other multi-threaded
kernel, and its oneDNN flags compile to the same call) is 1.3-1.5x oneDNN's on
ResNet-18's 64->64 layer, forward and both gradients (docs/performance.md,
fourth round); oneDNN is what PyTorch's CPU convolutions run. The three
passes of a convolution are three custom calls (conv.cc); `models/conv.py`
wires them into a `jax.custom_vjp` and uses them where `available()`.

The library is built on first use from conv.cc with the system's C++
compiler against Debian's `libdnnl-dev` (oneDNN 2.6; `launch/env.sh` installs
it) and jaxlib's FFI headers, into `$DUALITY_CACHE` (default
~/.cache/duality), keyed by the source and the jax version, so a second
process only loads it. Without a compiler or oneDNN, `available()` is False
and the models keep XLA's convolutions: nothing else changes. Opt out with
DUALITY_ONEDNN=0.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile

import jax
import numpy as np

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv.cc")
TARGETS = ("duality_onednn_conv_fwd", "duality_onednn_conv_bwd_data", "duality_onednn_conv_bwd_weights")
_state: dict = {}


def _library_path() -> str:
    with open(_SRC, "rb") as f:
        digest = hashlib.sha256(f.read() + jax.__version__.encode()).hexdigest()[:16]
    cache = os.environ.get("DUALITY_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "duality"))
    return os.path.join(cache, f"libduality_onednn_{digest}.so")


def _build(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    cmd = [os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{jax.ffi.include_dir()}",
           _SRC, "-ldnnl", "-o", tmp]
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
    try:
        path = _library_path()
        if not os.path.exists(path):
            _build(path)
        lib = ctypes.cdll.LoadLibrary(path)
        for name in TARGETS:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
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


def conv_fwd(x, w, stride, padding):
    n, h, wd, _ = x.shape
    kh, kw, _, o = w.shape
    ho, wo = (h + 2 * padding[0] - kh) // stride[0] + 1, (wd + 2 * padding[1] - kw) // stride[1] + 1
    out = jax.ShapeDtypeStruct((n, ho, wo, o), x.dtype)
    return _varying_as(jax.ffi.ffi_call(TARGETS[0], out)(x, w, **_attrs(stride, padding)), x, w)


def conv_bwd_data(g, w, x_shape, stride, padding):
    """The input gradient; under shard_map the caller gives it the input's axis types (`_varying_as`)."""
    return jax.ffi.ffi_call(TARGETS[1], jax.ShapeDtypeStruct(x_shape, g.dtype))(g, w, **_attrs(stride, padding))


def conv_bwd_weights(x, g, w_shape, stride, padding):
    """The kernel gradient; under shard_map the caller gives it the kernel's axis types (`_varying_as`)."""
    return jax.ffi.ffi_call(TARGETS[2], jax.ShapeDtypeStruct(w_shape, g.dtype))(x, g, **_attrs(stride, padding))
