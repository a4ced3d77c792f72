"""Which convolution gradients to use per layer: the project's full step under each rule, in one process.

  python benchmarks/conv_rules.py --models=small,resnet18 --rounds=8

`models/conv.py` offers three ways to differentiate a convolution ("xla": XLA's
own gradients, "dot": both gradients as matrix products, "mixed": XLA's
weight gradient with the product input gradient) and `backward="auto"`
picks one per layer. A layer timed alone does not settle the choice: inside
a step XLA fuses the neighbouring BatchNorm into the copies each rule needs
(docs/performance.md, third round). This builds the project's full training
step (`train.Trainer`, synthetic data) once per rule, checks that all rules
give the same first-step loss, then times them interleaved, round by round,
so every rule sees the same machine state. Rules: dot, xla, auto, and
s1xla_s2mixed (stride 1 "xla", strided layers "mixed").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root, for configs/
from duality import runtime  # noqa: E402

RULES = ("dot", "xla", "auto", "s1xla_s2mixed")


def rule_fn(name: str, auto):
    """resolve(backward, x_shape, kernel, stride, padding, itemsize) -> "xla" | "dot" | "mixed" for a rule."""
    if name == "auto":
        return auto
    if name == "s1xla_s2mixed":
        return lambda b, x_shape, kernel, stride, padding, itemsize: "xla" if max(stride) == 1 else "mixed"
    return lambda *a: name


def bench(encoder: str, batch: int, rounds: int, rules) -> None:
    import jax

    from duality import train
    from duality.models import conv as C
    from vs_pytorch import model_config

    auto, steps, first = C.resolve, {}, {}
    for name in rules:
        tr = train.Trainer(model_config(encoder, batch))
        state = {"s": tr.init_state(0)}
        b = tr.device_batch(tr.data.train.batch(0))

        def step(tr=tr, state=state, b=b):
            state["s"], m = tr.step_fn(state["s"], b)
            return jax.block_until_ready(m)

        C.resolve = rule_fn(name, auto)  # read while the step is traced, i.e. at its first call
        try:
            first[name] = float(step()["loss"])
        finally:
            C.resolve = auto
        step()
        steps[name] = step
    if max(first.values()) - min(first.values()) > 1e-4 * max(1.0, abs(first[rules[0]])):
        raise SystemExit(f"{encoder}: the rules' first-step losses differ: {first}")
    times = {k: [] for k in steps}
    for _ in range(rounds):
        for k, f in steps.items():
            t0 = time.perf_counter()
            f()
            times[k].append(1e3 * (time.perf_counter() - t0))
    base = statistics.median(times["dot"]) if "dot" in times else None
    print(f"\n{encoder}, batch {batch} x 2 views, first-step loss {first[rules[0]]:.5f} under every rule; "
          f"median of {rounds} interleaved steps\n")
    print("| rule | ms/step | fastest-slowest ms | vs dot |")
    print("|---|---:|---|---:|")
    for k, ts in times.items():
        med = statistics.median(ts)
        rel = f"{base / med:.2f}x" if base else "-"
        print(f"| {k} | {med:.0f} | {min(ts):.0f}-{max(ts):.0f} | {rel} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="small,resnet18")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rules", default=",".join(RULES))
    a = p.parse_args()
    rules = tuple(r for r in a.rules.split(",") if r)
    bad = [r for r in rules if r not in RULES]
    if bad:
        p.error(f"--rules: unknown {bad}; choose from {','.join(RULES)}")
    runtime.tune_xla_cpu()
    runtime.tune_allocator()
    import jax
    print(f"jax {jax.__version__} ({jax.default_backend()}, {jax.device_count()} device(s)); {os.cpu_count()} CPU cores")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    for enc in a.models.split(","):
        bench(enc, a.batch, a.rounds, rules)


if __name__ == "__main__":
    main()
