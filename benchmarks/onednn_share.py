"""How much of a CPU training step is oneDNN's convolutions, from oneDNN's own clock.

  python benchmarks/onednn_share.py                          # ResNet-18, batch 256 x 2 views
  python benchmarks/onednn_share.py --encoder=small --steps=5
  python benchmarks/onednn_share.py --passes                 # also each pass of ResNet-18's 3x3 layers alone

`jax.profiler` sees a custom call as one opaque op and perf sees oneDNN's
generated kernels as anonymous addresses; oneDNN itself can time every
primitive it executes (`ONEDNN_VERBOSE=profile_exec`). This script runs the
project's step (`train.Trainer.step_fn`, synthetic 28x28x1 data, no input
pipeline) in a child process with that switch on, and sums, per step, the
time oneDNN reports by pass (forward, input gradient, weight gradient, the
kernel reorders) against the step's wall time. XLA:CPU's own matrix
products log through oneDNN too (`gemm_api`): they are listed apart, and
the share counts the convolutions and their reorders only. The rest is
XLA's: BatchNorm, ReLU, the residual adds, projector, loss, optimiser and
the gaps between ops (`benchmarks/profile_step.py` splits that part).

The answer decides where speed can still come from: when oneDNN's share is
most of the step and its kernels already run near the CPU's multiply-add
rate (`docs/performance.md`, seventh round), only the rest is the
project's to shrink. `--passes` adds each pass of each distinct 3x3
convolution of ResNet-18 timed alone through the same custom calls (jitted
one pass at a time, batch `--batch`), to set against the in-step sums.
Needs the oneDNN convolutions (`pip install -e .[cpu]`).
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP = "duality-step-seconds"


def child(encoder: str, batch: int, steps: int, warm: int) -> None:
    """Runs in the ONEDNN_VERBOSE process: warm-up steps, then one marker line after each timed step."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import jax

    from duality import runtime, train
    from duality.models import onednn
    from train_step import config

    runtime.tune_allocator()
    runtime.tune_xla_cpu()
    if not onednn.available():
        raise SystemExit(f"oneDNN's convolutions are not available here: {onednn.why_not()}")
    t = train.Trainer(config(encoder, batch, 28, 1, "float32"))
    state = t.init_state(0)
    data = t.device_batch(t.data.train.batch(0))
    for _ in range(warm):  # compilation, then the heap's first growths (docs/performance.md, sixth round)
        state, m = t.step_fn(state, data)
        jax.block_until_ready(m)
    print(f"{STEP} start", flush=True)
    for _ in range(steps):
        t0 = time.perf_counter()
        state, m = t.step_fn(state, data)
        jax.block_until_ready(m)
        print(f"{STEP} {time.perf_counter() - t0:.6f}", flush=True)


# How many times one view's ResNet-18 (CIFAR stem, 28x28) runs each of conv_vs_pytorch.RESNET18's 3x3 layers
# (tests/test_benchmark_tools.py checks these against the model's own calls); the 1x1 shortcuts are left out.
PER_VIEW = {"stem 1->64 s1 28x28": 1, "layer1 64->64 s1 28x28": 4, "layer2 64->128 s2 28x28": 1,
            "layer2 128->128 s1 14x14": 3, "layer3 128->256 s2 14x14": 1, "layer3 256->256 s1 7x7": 3,
            "layer4 256->512 s2 7x7": 1, "layer4 512->512 s1 4x4": 3}


def step_floor(rows: dict) -> tuple[float, float, float]:
    """The step's 3x3 convolutions run back to back at their alone times: (forward, input gradient, weight
    gradient) ms for both views, from `rows` = layer name -> (fwd, bwd_data, bwd_weights) ms. The stem's input
    gradient is not computed in a step (the images need none)."""
    out = [0.0, 0.0, 0.0]
    for name, times in rows.items():
        for i, ms in enumerate(times):
            if not (i == 1 and name.startswith("stem")):
                out[i] += 2 * PER_VIEW[name] * ms
    return tuple(out)


def passes_alone(batch: int, reps: int = 7) -> None:
    """Median ms of each pass of each distinct 3x3 convolution of ResNet-18 (CIFAR stem, 28x28), alone,
    and their sum over a step (`step_floor`): what the step's convolutions cost with nothing beside them."""
    sys.path.insert(0, ROOT)
    import jax
    import numpy as np

    from conv_vs_pytorch import RESNET18
    from vs_pytorch import timed
    from duality import runtime
    from duality.models import onednn

    runtime.tune_allocator()
    if not onednn.available():
        raise SystemExit(f"oneDNN's convolutions are not available here: {onednn.why_not()}")
    rng = np.random.default_rng(0)

    def median_ms(f, *args):
        jax.block_until_ready(f(*args))  # compile
        return 1e3 * statistics.median(timed(lambda: jax.block_until_ready(f(*args)), reps))

    print(f"\n| layer, batch {batch}, alone | forward ms | input gradient ms | weight gradient ms |")
    print("|---|---:|---:|---:|")
    rows = {}
    for name, _, (h, w, c), o, s in RESNET18:
        st, pad = (s, s), (1, 1)
        ho, wo = (h + 2 - 3) // s + 1, (w + 2 - 3) // s + 1
        x = jax.numpy.asarray(rng.normal(size=(batch, h, w, c)).astype(np.float32))
        k = jax.numpy.asarray(rng.normal(size=(3, 3, c, o)).astype(np.float32))
        g = jax.numpy.asarray(rng.normal(size=(batch, ho, wo, o)).astype(np.float32))
        fwd = jax.jit(lambda x, k: onednn.conv_fwd(x, k, st, pad))
        bwd_data = jax.jit(lambda g, k: onednn.conv_bwd_data(g, k, x.shape, st, pad))
        bwd_weights = jax.jit(lambda x, g: onednn.conv_bwd_weights(x, g, k.shape, st, pad))
        rows[name] = (median_ms(fwd, x, k), median_ms(bwd_data, g, k), median_ms(bwd_weights, x, g))
        print(f"| {name} | " + " | ".join(f"{ms:.1f}" for ms in rows[name]) + " |", flush=True)
    fwd_ms, data_ms, weights_ms = step_floor(rows)
    print(f"\nA step's 3x3 convolutions (batch {batch} x 2 views) at these times, back to back: "
          f"{fwd_ms + data_ms + weights_ms:.0f} ms (forward {fwd_ms:.0f}, input gradient {data_ms:.0f}, "
          f"weight gradient {weights_ms:.0f}; the 1x1 shortcuts not included)")


def parse(lines) -> list[dict]:
    """Per timed step: wall seconds and oneDNN's milliseconds by (primitive, implementation, pass)."""
    steps, cur, started = [], collections.Counter(), False
    for line in lines:
        if line.startswith(STEP):
            value = line.split()[1]
            if started:
                steps.append({"wall": float(value), "ms": cur})
            started, cur = True, collections.Counter()
        elif started and line.startswith("onednn_verbose") and ",exec," in line:
            f = line.rstrip().split(",")
            # onednn_verbose,[timestamp,]primitive,exec,cpu,<kind>,<impl>,<prop>,...,<ms>
            i = f.index("exec")
            kind, impl, prop = f[i + 2], f[i + 3], f[i + 4]
            cur[(kind, impl, prop)] += float(f[-1])
    return steps


def part(kind: str, prop: str) -> str:
    if kind == "convolution":
        return {"forward_training": "convolution forward", "forward_inference": "convolution forward",
                "backward_data": "convolution input gradient",
                "backward_weights": "convolution weight gradient"}.get(prop, f"convolution {prop}")
    if kind == "batch_normalization":  # models/norm.py's BatchNorm (+ ReLU) on one device
        return "BatchNorm (+ ReLU) " + ("backward" if prop.startswith("backward") else "forward")
    if kind == "gemm_api":  # XLA:CPU's own matrix products (augmentation's resampling, projector) also log
        return "matrix products (XLA's dots)"
    return "kernel reorders" if kind == "reorder" else f"other oneDNN ({kind})"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sys.path.insert(0, ROOT)
    from duality.models.ssl_model import ENCODERS

    p.add_argument("--encoder", default="resnet18", choices=ENCODERS)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warm", type=int, default=8, help="untimed steps first (compilation, heap growth)")
    p.add_argument("--passes", action="store_true", help="also time each pass of ResNet-18's 3x3 layers alone")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.steps < 1 or a.warm < 1 or a.batch < 2:
        p.error(f"--steps, --warm must be >= 1 and --batch >= 2 (got {a.steps}, {a.warm}, {a.batch})")
    if a.child:
        return child(a.encoder, a.batch, a.steps, a.warm)
    env = dict(os.environ, ONEDNN_VERBOSE="profile_exec")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--encoder={a.encoder}", f"--batch={a.batch}",
           f"--steps={a.steps}", f"--warm={a.warm}"]
    run = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-4000:])
        raise SystemExit(run.returncode)
    steps = parse(run.stdout.splitlines())
    if not steps:
        raise SystemExit("no timed step in the child's output")
    version = next((ln.split(",")[-1] for ln in run.stdout.splitlines() if ",info,oneDNN" in ln), "oneDNN")
    print(f"{a.encoder}, batch {a.batch} x 2 views, {a.steps} steps after {a.warm} untimed; {version.strip()}; "
          f"wall time per step as the child measured it (oneDNN's logging included)\n")
    print("| step | wall ms | oneDNN convolutions + reorders ms | share | the rest (XLA, gaps) ms |")
    print("|---:|---:|---:|---:|---:|")
    for i, s in enumerate(steps):
        one = sum(ms for (kind, _, _), ms in s["ms"].items() if kind in ("convolution", "reorder"))
        print(f"| {i + 1} | {1e3 * s['wall']:.0f} | {one:.0f} | {100 * one / (1e3 * s['wall']):.0f}% | "
              f"{1e3 * s['wall'] - one:.0f} |")
    by_part = collections.defaultdict(list)
    by_impl = collections.defaultdict(list)
    for s in steps:
        parts, impls = collections.Counter(), collections.Counter()
        for (kind, impl, prop), ms in s["ms"].items():
            parts[part(kind, prop)] += ms
            impls[(part(kind, prop), impl)] += ms
        for k in set(parts) | set(by_part):
            by_part[k].append(parts[k])
        for k in set(impls) | set(by_impl):
            by_impl[k].append(impls[k])
    print("\n| oneDNN pass (median over steps) | ms per step | kernels |")
    print("|---|---:|---|")
    for k, v in sorted(by_part.items(), key=lambda kv: -statistics.median(kv[1])):
        kernels = ", ".join(f"{impl} {statistics.median(ms):.0f}" for (pp, impl), ms in
                            sorted(by_impl.items(), key=lambda kv: -statistics.median(kv[1])) if pp == k)
        print(f"| {k} | {statistics.median(v):.0f} | {kernels} |")
    if a.passes:
        passes_alone(a.batch)


if __name__ == "__main__":
    main()
