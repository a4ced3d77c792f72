"""Time of jit(value_and_grad) for every registered loss, and the Gram route.

  python benchmarks/losses.py                       # all losses, three shapes
  python benchmarks/losses.py --shapes=512x8192 --losses=vicreg,barlow_twins

Prints, per (N, M), the median wall time of one compiled value_and_grad call
(gradient with respect to both views) on the current backend, then for
vicreg and barlow_twins the N x N Gram route beside the M x M covariance
route with the speed-up. Target: >= 10x at N=512, M=8192 on a 2-core CPU.
Compile time is excluded (one warm-up call) and reported separately.
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax

from duality import losses
from duality.analysis.loss_report import example_inputs

ROUTED = ("vicreg", "barlow_twins")


def _timed(fn, args, repeats: int, budget_s: float):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), compile_s


def bench(name: str, n: int, m: int, repeats: int, budget_s: float, **hparams):
    key = jax.random.key(0)
    z1 = jax.random.normal(key, (n, m))
    z2 = z1 + 0.5 * jax.random.normal(jax.random.key(1), (n, m))
    arrays, static = example_inputs(name, n, m)
    static.update(hparams)
    fn = losses.get(name)
    step = jax.jit(jax.value_and_grad(lambda a, b, arr: fn(a, b, **arr, **static)[0], argnums=(0, 1)))
    return _timed(step, (z1, z2, arrays), repeats, budget_s)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="256x2048,512x8192,2048x8192", help="comma-separated NxM")
    p.add_argument("--losses", default=",".join(losses.names()), help="comma-separated loss names")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=float, default=5.0, help="seconds of timed calls per cell, at least one")
    a = p.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in a.shapes.split(",")]
    names = a.losses.split(",")
    print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), {jax.device_count()} device(s); "
          f"jax {jax.__version__}")
    print("\nvalue_and_grad wall time per call, ms (compile s)")
    print(f"{'loss':<14}" + "".join(f"{f'N={n},M={m}':>24}" for n, m in shapes), flush=True)
    for name in names:
        cells = []
        for n, m in shapes:
            t, c = bench(name, n, m, a.repeats, a.budget)
            cells.append(f"{t * 1e3:>15.1f} ({c:5.1f}s)")
        print(f"{name:<14}" + "".join(f"{c:>24}" for c in cells), flush=True)
    routed = [r for r in ROUTED if r in names]
    if routed:
        print("\nFrobenius route: N x N Gram vs M x M covariance, value_and_grad ms")
        print(f"{'loss':<14}{'N':>6}{'M':>7}{'gram':>11}{'covariance':>12}{'speed-up':>10}")
        for name in routed:
            for n, m in shapes:
                tg, _ = bench(name, n, m, a.repeats, a.budget, route="gram")
                tc, _ = bench(name, n, m, a.repeats, a.budget, route="covariance")
                print(f"{name:<14}{n:>6}{m:>7}{tg * 1e3:>11.1f}{tc * 1e3:>12.1f}{tc / tg:>9.1f}x", flush=True)


if __name__ == "__main__":
    main()
