"""BatchNorm (+ ReLU) in training mode, oneDNN's calls against XLA's ops, at the encoders' activation shapes.

  python benchmarks/batchnorm.py                  # ResNet-18 (CIFAR stem, 28x28) shapes, batch 256
  python benchmarks/batchnorm.py --batch=128 --steps=30

For each activation shape of ResNet-18 on 28x28 inputs (one view, batch
`--batch`), `models.norm.BatchNorm` with `impl="xla"` and `impl="onednn"`,
jitted, in two uses the encoders make of it:

* BN + ReLU (`relu=True`: the ReLU fused into oneDNN's call);
* BN, then the residual added and a ReLU (a block's last BatchNorm: oneDNN
  3.2 fuses no addition on CPU, so XLA adds and rectifies after the call).

Prints the median ms of the forward pass alone and of forward + backward
(gradients with respect to the input, the scale and the bias, from a random
output gradient), interleaved, with the project's allocator and XLA settings
(`duality.runtime`), and ||dx_xla - dx_onednn|| / ||dx_xla|| for the two
implementations' input gradients (an element within round-off of the
ReLU's kink may fall on either side of it in either). docs/performance.md (eighth round) has the
figures. Needs the oneDNN library (`pip install -e .[cpu]`).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

SHAPES = ((28, 28, 64), (14, 14, 128), (7, 7, 256), (4, 4, 512))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed calls per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    for flag in ("batch", "steps", "rounds"):
        if getattr(a, flag) < 1:
            p.error(f"--{flag}={getattr(a, flag)}: must be at least 1")  # exit code 2, before anything runs
    from duality import runtime

    runtime.tune_allocator()
    runtime.tune_xla_cpu()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from duality.models import onednn
    from duality.models.norm import BatchNorm
    from vs_pytorch import timed

    if jax.default_backend() != "cpu" or not onednn.available():
        raise SystemExit(f"oneDNN's BatchNorm is not available here: {onednn.why_not() or 'not a CPU backend'}")
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPU cores; batch {a.batch}; median ms of {a.rounds} x {a.steps} calls, interleaved")
    print("\n| activation | use | XLA fwd | oneDNN fwd | XLA fwd+bwd | oneDNN fwd+bwd | ratio fwd+bwd | input grads, rel. diff. |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for h, w, c in SHAPES:
        shape = (a.batch, h, w, c)
        x, r, g = (jnp.asarray(rng.normal(size=shape).astype(np.float32)) for _ in range(3))
        params = {"scale": jnp.asarray(rng.uniform(0.5, 1.5, c).astype(np.float32)),
                  "bias": jnp.asarray(rng.normal(size=c).astype(np.float32) * 0.3)}
        stats = {"mean": jnp.zeros(c), "var": jnp.ones(c)}
        for use in ("BN + ReLU", "BN, + residual, ReLU"):
            fns = {}
            for impl in ("xla", "onednn"):
                m = BatchNorm(impl=impl, relu=use == "BN + ReLU")

                def fwd(x, params, r, m=m, use=use):
                    y, _ = m.apply({"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
                    return y if use == "BN + ReLU" else jax.nn.relu(y + r)

                def fwd_bwd(x, params, r, fwd=fwd):
                    return jax.vjp(fwd, x, params, r)[1](g)

                fns[impl] = (jax.jit(fwd), jax.jit(fwd_bwd))
            times = {(impl, k): [] for impl in fns for k in (0, 1)}
            for impl, (f, fb) in fns.items():
                jax.block_until_ready((f(x, params, r), fb(x, params, r)))
            for _ in range(a.rounds):
                for impl, pair in fns.items():
                    for k, fn in enumerate(pair):
                        times[(impl, k)] += timed(lambda fn=fn: jax.block_until_ready(fn(x, params, r)), a.steps)
            ms = {key: 1e3 * statistics.median(v) for key, v in times.items()}
            dx = [np.asarray(fns[impl][1](x, params, r)[0]) for impl in ("xla", "onednn")]
            diff = float(np.linalg.norm(dx[0] - dx[1]) / max(np.linalg.norm(dx[0]), 1e-30))
            print(f"| {h}x{w}x{c} | {use} | {ms[('xla', 0)]:.2f} | {ms[('onednn', 0)]:.2f} | {ms[('xla', 1)]:.2f} | "
                  f"{ms[('onednn', 1)]:.2f} | {ms[('xla', 1)] / ms[('onednn', 1)]:.2f}x | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
