"""XLA:CPU's slow matrix-product layout: a @ b.T against a @ b, and against PyTorch's a @ b.T.

  python benchmarks/nt_product.py                  # the projector's shapes, batch 256
  python benchmarks/nt_product.py --shapes=256x2048x2048 --steps=40

For a [m, k] and b [n, k], `a @ b.T` contracts b over its last axis (the
"NT" layout): every Dense layer's input gradient (dx = g W^T) has it. On
the 2-core AMD EPYC VM, jaxlib 0.10.2 with `runtime.tune_xla_cpu` (YNNPACK
for reductions only), XLA:CPU ran 256x2048 @ (2048x2048)^T 4-5x slower than
the plain product of the same size, and 2.5x slower than PyTorch's NT
product (docs/performance.md, ninth round). The script also times the same
product written as (b a^T)^T with a^T materialised (`optimization_barrier`
keeps XLA from folding the transposes back into the NT product), which runs
at the plain product's speed. All variants are checked equal to a float64
product before timing; each row is the median of `--steps` calls, variants
interleaved call by call so they see the same machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    out = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"--shapes item {item!r}: write MxKxN (a is MxK, b is NxK), e.g. 256x2048x2048")
        out.append(tuple(int(p) for p in parts))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="256x2048x2048,256x512x2048,256x1024x1024,256x256x1024")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    a = p.parse_args()
    try:
        shapes = parse_shapes(a.shapes)
    except ValueError as e:
        p.error(str(e))
    if a.steps < 1:
        p.error(f"--steps {a.steps} must be >= 1")
    from duality import runtime

    runtime.tune_xla_cpu()  # as the entry points: the setting under which the NT layout is slow
    import jax
    from jax import lax

    try:
        import torch
        torch.set_num_threads(a.threads)
    except ImportError:
        torch = None
    print(f"jax {jax.__version__}, {jax.default_backend()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"PyTorch {torch.__version__ if torch else '(not installed: pip install -e .[bench])'}\n")
    print("| a [m,k] @ b.T, b [n,k] | JAX a @ b.T ms | JAX a @ b (b as [k,n]) ms | JAX (b a^T)^T ms | "
          "PyTorch a @ b.T ms | JAX NT / plain | JAX NT / PyTorch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for m, k, n in shapes:
        x = rng.normal(size=(m, k)).astype(np.float32)
        w = rng.normal(size=(n, k)).astype(np.float32)
        ref = x.astype(np.float64) @ w.astype(np.float64).T
        jx, jw, jwt = jax.device_put(x), jax.device_put(w), jax.device_put(np.ascontiguousarray(w.T))
        nt = jax.jit(lambda x, w: x @ w.T)
        nn_ = jax.jit(lambda x, wt: x @ wt)
        rewritten = jax.jit(lambda x, w: lax.optimization_barrier(w @ lax.optimization_barrier(x.T)).T)
        calls = {"nt": lambda: nt(jx, jw).block_until_ready(),
                 "nn": lambda: nn_(jx, jwt).block_until_ready(),
                 "rewritten": lambda: rewritten(jx, jw).block_until_ready()}
        if torch is not None:
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            calls["torch"] = lambda: tx @ tw.T
        for name, fn in calls.items():
            out = np.asarray(fn(), np.float64)
            err = np.abs(out - ref).max() / np.abs(ref).max()
            if err > 1e-5:
                raise SystemExit(f"{name} {m}x{k}x{n}: relative error {err:.1e} against float64")
        times = {name: [] for name in calls}
        for _ in range(a.steps):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        tt = f"{ms['torch']:.2f}" if "torch" in ms else "-"
        ratio = f"{ms['nt'] / ms['torch']:.2f}x" if "torch" in ms else "-"
        print(f"| {m}x{k} @ ({n}x{k})^T | {ms['nt']:.2f} | {ms['nn']:.2f} | {ms['rewritten']:.2f} | {tt} | "
              f"{ms['nt'] / ms['nn']:.2f}x | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
