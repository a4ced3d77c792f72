"""Convolutions whose gradients are matrix products: the models' Conv on CPU.

XLA:CPU computes a convolution's forward pass well, but differentiates a
strided one badly: the input gradient becomes a convolution over the output
gradient dilated with zeros (three of four multiply-adds of a stride-2 layer
are with an inserted zero) and the weight gradient a window-dilated
convolution fed by a transposed copy of the input (docs/performance.md). On a
2-core CPU the small convnet's 32->64 stride-2 layer took 288 ms forward +
backward at batch 256, against PyTorch's 74 ms.

`conv2d(..., backward="dot")` keeps XLA's forward convolution and writes the
backward pass as what it is (a `jax.custom_vjp`), with im2col patches:

* weight gradient: dW = P^T G, one matrix product of the k*k*Cin patch
  matrix P of the input (k*k strided slices, concatenated) with the output
  gradient G;
* input gradient: G W^T gives each output position's contribution to its
  k*k input taps; they are summed back (col2im) one stride phase at a time,
  so nothing is dilated: for stride s the input's rows r = s*q + a (phase a)
  receive tap i = a, a+s, ... shifted by i // s, and the s*s phases are
  interleaved by a reshape.

The function is the same convolution; gradients agree with XLA's to float32
round-off (tests/test_layers.py). Forward + backward of the small convnet's
layers, same run: 1.4x (conv3) to 3.0x (conv2) faster than XLA's gradients
(benchmarks/conv_vs_pytorch.py) -- while XLA:CPU ran convolutions through
single-threaded YNNPACK fusions.

`runtime.tune_xla_cpu` moves convolutions back to XLA's multi-threaded
kernels, and that changes the balance (docs/performance.md, third round):
XLA's weight gradient becomes the faster one on every layer of both encoders
(32->64 stride 2 at batch 512: 94 against 180 ms; ResNet-18's 64->64 at 28x28:
528 against 934 ms), its input gradient the faster one for stride 1 (370
against 481 ms), while the product input gradient stays ahead for stride 2
(57 against 77 ms). `backward="mixed"` is XLA's weight gradient with the
product input gradient. In a whole step the strided layers gain nothing
from it: XLA's weight gradient wants the layer's input transposed to
(C, H, W, N), and when that input is a BatchNorm + ReLU output XLA recomputes
the BatchNorm inside the transposing copy. The small convnet's step (all its
strided layers) took 528 ms with "mixed" against 529 ms with "dot" on a quiet
machine, 1004 against 935 ms on a shared one; ResNet-18's 12.4 against 12.6 s
(benchmarks/conv_rules.py). So `backward="auto"` on CPU means: "xla" for stride-1 layers and "dot" for
strided ones when `tune_xla_cpu` is in effect, "dot" for all when it is not;
"xla" on GPU and TPU, where XLA's own gradients are the fast ones, and
wherever the patch matrix would exceed `DOT_MAX_BYTES` (a 7x7 ImageNet stem
at batch 256).

Since the fourth round (docs/performance.md) the first choice on CPU is none
of these: XLA:CPU's own convolution kernel (Eigen's) is 1.1-1.6x oneDNN's,
the library PyTorch's CPU convolutions run, in each of the three passes.
`backward="onednn"` runs all three passes (forward, input gradient, weight
gradient) as oneDNN calls (`duality/models/onednn`, `jax.ffi` custom calls
built on first use), and `"auto"` picks it on CPU for float32 wherever the
library could be built (against oneDNN 3.2, the `cpu` extra; opt out with
DUALITY_ONEDNN=0). Small convnet step 207 against 271 ms, ResNet-18
3.99 against 6.37 s with XLA's convolutions, same first loss to the last bit
(one process, 2-core AMD EPYC). Elsewhere "auto" falls back to the rules above.

`Conv` is a drop-in for `flax.linen.Conv` as the models use it (no bias,
symmetric integer padding, one group): the same class name and `kernel`
parameter of shape (kh, kw, Cin, Cout), drawn from the same rng, so
checkpoints and initialisations are unchanged.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

BACKWARDS = ("auto", "xla", "dot", "mixed", "onednn")
DOT_MAX_BYTES = 1 << 30  # above this patch-matrix size "auto" keeps XLA's gradients (memory)
_DIMS = ("NHWC", "HWIO", "NHWC")

conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # He init, as torchvision's ResNet


def _xla(x, w, stride, padding):
    return lax.conv_general_dilated(x, w, stride, [(p, p) for p in padding], dimension_numbers=_DIMS)


def patches(x, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]):
    """im2col: (N, Ho, Wo, kh*kw*C), taps in (i, j) row-major order, channels fastest (the HWIO kernel's order)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = x.shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    taps = [lax.slice(x, (0, i, j, 0), (n, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c), (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]
    return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


def col2im(cols, shape, kernel, stride, padding):
    """The adjoint of `patches`: (N, Ho, Wo, kh*kw*C) tap contributions summed into an (N, H, W, C) input.

    Summed one stride phase at a time (rows s*q + a take the taps i = a mod s,
    shifted by i // s), then the phases interleaved: no zero-dilated arrays.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = shape
    _, ho, wo, _ = cols.shape
    cols = cols.reshape(n, ho, wo, kh, kw, c)
    hq, wq = ho + (kh - 1) // sh, wo + (kw - 1) // sw
    rows = []
    for a in range(sh):
        phase_row = []
        for b in range(sw):
            acc = None
            for i in range(a, kh, sh):
                for j in range(b, kw, sw):
                    di, dj = i // sh, j // sw
                    t = jnp.pad(cols[:, :, :, i, j, :], ((0, 0), (di, hq - ho - di), (dj, wq - wo - dj), (0, 0)))
                    acc = t if acc is None else acc + t
            phase_row.append(jnp.zeros((n, hq, wq, c), cols.dtype) if acc is None else acc)
        rows.append(jnp.stack(phase_row, axis=3))  # (N, hq, wq, sw, C)
    full = jnp.stack(rows, axis=2).reshape(n, hq * sh, wq * sw, c)  # (N, hq, sh, wq, sw, C) interleaved
    need_h, need_w = ph + h, pw + w  # trailing input rows no window reaches have a zero gradient
    if full.shape[1] < need_h or full.shape[2] < need_w:
        full = jnp.pad(full, ((0, 0), (0, max(0, need_h - full.shape[1])), (0, max(0, need_w - full.shape[2])), (0, 0)))
    return full[:, ph:ph + h, pw:pw + w, :]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_dot(x, w, stride, padding):
    return _xla(x, w, stride, padding)


def _conv_dot_fwd(x, w, stride, padding):
    return _xla(x, w, stride, padding), (x, w)


def _conv_dot_bwd(stride, padding, res, g):
    x, w = res
    kh, kw, cin, cout = w.shape
    wmat = w.reshape(kh * kw * cin, cout)
    g2 = g.reshape(-1, cout)
    # dW^T = G^T P, written as a 2-D product: as an einsum over (n, h, w) XLA:CPU copied the 9x larger patch
    # matrix into a transposed layout first (1.4x slower at 32->64, stride 2)
    dw = (g2.T @ patches(x, (kh, kw), stride, padding).reshape(g2.shape[0], -1)).T.reshape(w.shape)
    dx = col2im((g2 @ wmat.T).reshape(*g.shape[:3], -1), x.shape, (kh, kw), stride, padding)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv_dot.defvjp(_conv_dot_fwd, _conv_dot_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_mixed(x, w, stride, padding):
    return _xla(x, w, stride, padding)


def _conv_mixed_bwd(stride, padding, res, g):
    x, w = res
    kh, kw, cin, cout = w.shape
    # XLA's own weight gradient (a convolution of the input with the output gradient), the product input gradient
    dw = jax.vjp(lambda w_: _xla(x, w_, stride, padding), w)[1](g)[0]
    dx = col2im((g.reshape(-1, cout) @ w.reshape(kh * kw * cin, cout).T).reshape(*g.shape[:3], -1),
                x.shape, (kh, kw), stride, padding)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv_mixed.defvjp(_conv_dot_fwd, _conv_mixed_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_onednn(x, w, stride, padding):
    from duality.models import onednn
    return onednn.conv_fwd(x, w, stride, padding)


def _conv_onednn_fwd(x, w, stride, padding):
    return _conv_onednn(x, w, stride, padding), (x, w)


def _conv_onednn_bwd(stride, padding, res, g):
    from duality.models import onednn
    x, w = res
    # the custom calls drop shard_map's axis types: each gradient is first typed like its operands, then like
    # its primal (a kernel passed in unvaried gets the sum over devices, the transpose of that broadcast)
    return (onednn._cotangent_as(onednn._varying_as(onednn.conv_bwd_data(g, w, x.shape, stride, padding), x, g), x),
            onednn._cotangent_as(onednn._varying_as(onednn.conv_bwd_weights(x, g, w.shape, stride, padding), x, g), w))


_conv_onednn.defvjp(_conv_onednn_fwd, _conv_onednn_bwd)


_warned: list = []


def _onednn_ok(dtype) -> bool:
    from duality.models import onednn
    if np.dtype(dtype) != np.float32 or jax.default_backend() != "cpu":
        return False
    ok = onednn.available()
    if not ok and not _warned and os.environ.get("DUALITY_ONEDNN", "1") != "0":
        _warned.append(True)  # once per process: the fallback is silent otherwise, and 1.5x slower
        logging.warning("CPU convolutions run on XLA's own kernels, about 1.5x slower than oneDNN's: %s",
                        onednn.why_not() or "oneDNN unavailable")
    return ok


def _xla_convs_threaded() -> bool:
    """Whether XLA:CPU runs this process's convolutions on its multi-threaded kernels (`runtime.tune_xla_cpu`)."""
    from duality import runtime
    return f"{runtime.YNN_FLAG}=reduce" in os.environ.get("XLA_FLAGS", "")


def resolve(backward: str, x_shape, kernel, stride, padding, itemsize: int) -> str:
    """The implementation `backward` means for this layer ("xla", "dot", "mixed" or "onednn")."""
    if backward not in BACKWARDS:
        raise ValueError(f"conv backward={backward!r}: use one of {BACKWARDS}")
    if backward == "onednn" and not _onednn_ok(np.float32 if itemsize == 4 else np.float16):
        from duality.models import onednn
        raise ValueError(f"conv backward='onednn': oneDNN's convolutions are not available here "
                         f"({onednn.why_not() or 'float32 on CPU only'}); use 'auto'")
    if backward != "auto":
        return backward
    if jax.default_backend() != "cpu":
        return "xla"
    if itemsize == 4 and _onednn_ok(np.float32):
        return "onednn"
    n, h, w, c = x_shape
    ho, wo = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    if n * ho * wo * kernel[0] * kernel[1] * c * itemsize > DOT_MAX_BYTES:
        return "xla"
    if not _xla_convs_threaded():
        return "dot"
    return "dot" if max(stride) > 1 else "xla"


def conv2d(x, w, stride=(1, 1), padding=(0, 0), backward: str = "auto"):
    """NHWC x HWIO convolution with symmetric zero padding; `backward` picks how it is differentiated."""
    stride, padding = tuple(stride), tuple(padding)
    how = resolve(backward, x.shape, w.shape[:2], stride, padding, np.dtype(x.dtype).itemsize)
    if how == "onednn":
        return _conv_onednn(x, w, stride, padding)
    if how == "dot":
        return _conv_dot(x, w, stride, padding)
    return _conv_mixed(x, w, stride, padding) if how == "mixed" else _xla(x, w, stride, padding)


class Conv(nn.Module):
    """A bias-free 2-D convolution (NHWC), parameters as `flax.linen.Conv`'s."""

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: int = 0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Any = conv_init
    backward: str = "auto"

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), self.param_dtype)
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        return conv2d(x, kernel, self.strides, (self.padding, self.padding), self.backward)


def conv(features: int, kernel_size=(3, 3), strides=(1, 1), padding: int = 0, **kw) -> Conv:
    """The models' convolution: `Conv` with He init (fan-out), as `nn.Conv(use_bias=False, ...)` was called."""
    return Conv(features, tuple(kernel_size), tuple(strides), padding, **kw)
