"""One 3x3 stride-1 convolution's forward pass and each of its gradients alone, XLA:CPU against PyTorch.

  python benchmarks/conv_gradients.py                  # ResNet-18's 64->64 layer at 28x28, batch 256
  python benchmarks/conv_gradients.py 256 14 128 128   # batch, size, input channels, output channels

The weight gradient is also computed three other ways, each checked against XLA's to float32
round-off: one im2col product (`models/conv.py`'s "dot"), nine products of contiguous row slices of
the padded, flattened input (no strided copies), and one product with the output gradient shifted nine
ways. Output gradients are random (a constant one lets XLA simplify). Interleaved calls, medians, ms.
Where the numbers went: docs/performance.md, fourth round.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from duality import runtime  # noqa: E402


def weight_grad_variants(n, h, cin, cout):
    """name -> f(x, g, w) for the weight gradient of a 3x3, stride-1, padding-1 convolution."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from duality.models import conv as C

    def fwd(x, w):
        return C._xla(x, w, (1, 1), (1, 1))

    def flat(x, g):  # the padded input and the output gradient on the same (h+2) x (w+2) grid, flattened
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(-1, cin)
        gp = jnp.pad(g, ((0, 0), (0, 2), (0, 2), (0, 0))).reshape(-1, cout)
        return xp, gp

    offsets = [i * (h + 2) + j for i in range(3) for j in range(3)]

    def shifted_input(x, g, w):  # tap (i, j) is a row slice of the flattened padded input
        xp, gp = flat(x, g)
        n_rows = xp.shape[0] - offsets[-1]
        taps = [lax.dot_general(lax.slice_in_dim(xp, o, o + n_rows), gp[:n_rows], (((0,), (0,)), ((), ())))
                for o in offsets]
        return jnp.stack(taps).reshape(3, 3, cin, cout)

    def shifted_gradient(x, g, w):  # the output gradient shifted nine ways, side by side: one product
        xp, gp = flat(x, g)
        m = xp.shape[0]
        gs = jnp.concatenate([jnp.pad(gp[:m - o], ((o, 0), (0, 0))) for o in offsets], 1)
        return (xp.T @ gs).reshape(cin, 3, 3, cout).transpose(1, 2, 0, 3)

    return {"fwd": lambda x, g, w: fwd(x, w),
            "dx": lambda x, g, w: jax.vjp(lambda x_: fwd(x_, w), x)[1](g)[0],
            "dw": lambda x, g, w: jax.vjp(lambda w_: fwd(x, w_), w)[1](g)[0],
            "dw im2col": lambda x, g, w: C._conv_dot_bwd((1, 1), (1, 1), (x, w), g)[1],
            "dw row slices": shifted_input,
            "dw shifted g": shifted_gradient}


def main():
    n, h, cin, cout = [int(a) for a in sys.argv[1:5]] if len(sys.argv) > 4 else (256, 28, 64, 64)
    runtime.tune_allocator()  # as the entry points do
    runtime.tune_xla_cpu()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, h, h, cin)).astype(np.float32))
    g = jnp.asarray(rng.normal(size=(n, h, h, cout)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(3, 3, cin, cout)).astype(np.float32) * 0.05)
    jfns = {k: jax.jit(f) for k, f in weight_grad_variants(n, h, cin, cout).items()}
    ref = jfns["dw"](x, g, w)
    for k in ("dw im2col", "dw row slices", "dw shifted g"):
        err = float(jnp.max(jnp.abs(jfns[k](x, g, w) - ref)) / jnp.max(jnp.abs(ref)))
        if err > 1e-4:
            raise SystemExit(f"{k} differs from XLA's weight gradient: relative error {err:.1e}")
    tx, tg = (torch.from_numpy(np.asarray(a).transpose(0, 3, 1, 2).copy()).contiguous(
        memory_format=torch.channels_last) for a in (x, g))
    tw = torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy()).contiguous(memory_format=torch.channels_last)

    def torch_fwd():
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, tw, padding=1)

    fns = {f"jax {k}": (lambda f=f: jax.block_until_ready(f(x, g, w))) for k, f in jfns.items()}
    fns["torch fwd"] = torch_fwd
    fns["torch dx"] = lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tg, padding=1)
    fns["torch dw"] = lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg, padding=1)
    for f in fns.values():  # compile, warm up
        f(), f()
    times = {k: [] for k in fns}
    for _ in range(5):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    print(f"3x3 convolution {cin}->{cout}, {h}x{h}, batch {n}; jax {jax.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); median of 5 interleaved calls\n")
    print("| program | ms |\n|---|---:|")
    for k, v in times.items():
        print(f"| {k} | {1e3 * statistics.median(v):.1f} |")


if __name__ == "__main__":
    main()
