"""Two variants of the project's training step timed in one process, step by step in turn: a paired A/B.

  python benchmarks/ab_step.py --encoder=resnet18 --a=model.norm_impl=xla --b=model.norm_impl=onednn
  python benchmarks/ab_step.py --a=env:DUALITY_ONEDNN=0 --b= --pairs=30     # any setting read when tracing

On a shared VM the machine's speed drifts by 10-20% over minutes
(docs/performance.md): two variants timed in separate processes, one after
the other, see different machines, and a 2% difference needs many rounds to
show. Here both trainers live in one process and their steps alternate (A B,
B A, A B, ...), so each pair sees the same phase; the answer is the median of
the per-pair ratios A/B, with its spread.

A variant is comma-separated overrides of the benchmark config
(`vs_pytorch.model_config`: synthetic 28x28x1 data, the CPU default's
recipe, `--batch` x 2 views), `key=value` for a config field (parsed like the
command line's: ints, floats, booleans, strings) or `env:NAME=value` for an
environment variable, set while that variant's step is built and first
traced, then restored. An empty variant is the config as it is. Each
variant's step is compiled and warmed up (`--warmup` steps each, the heap's
growth included) before timing.

What it cannot compare: settings read when a process starts (XLA_FLAGS,
OMP_*, the allocator), which need `vs_pytorch.py`'s process per variant.
Two ResNet-18 trainers hold about twice one's memory (12-16 GB).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def parse_variant(text: str) -> tuple[dict, dict]:
    """'a.b=1,env:X=y' -> ({'a.b': 1}, {'X': 'y'}); raises ValueError naming the bad item."""
    fields, env = {}, {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{item!r} is not key=value or env:NAME=value")
        if key.startswith("env:"):
            env[key[4:]] = value
            continue
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        else:
            value = {"true": True, "false": False}.get(value.lower(), value)
        fields[key] = value
    return fields, env


@contextlib.contextmanager
def environment(env: dict):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build(encoder: str, batch: int, fields: dict, env: dict):
    """A zero-argument step of the project's trainer with `fields` set, traced and compiled under `env`."""
    import jax
    from duality import config_check, train
    from vs_pytorch import model_config

    cfg = model_config(encoder, batch)
    for key, value in fields.items():
        node, *path = key.split(".")
        target = cfg
        for name in [node, *path][:-1]:
            target = target[name]
        if key.split(".")[-1] not in target and key not in config_check.RULES:  # optional fields live in RULES
            raise ValueError(f"--a/--b: no config field {key!r}")
        target[key.split(".")[-1]] = value
    with environment(env):
        tr = train.Trainer(cfg)
        box = {"s": tr.init_state(0)}
        batch_ = tr.device_batch(tr.data.train.batch(0))

        def step():
            box["s"], m = tr.step_fn(box["s"], batch_)
            jax.block_until_ready(m)

        step()  # traced and compiled here, under the variant's environment
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", default="small", choices=("small", "resnet18"))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--a", required=True, help="variant A: key=value,env:NAME=value,... ('' for the config as is)")
    p.add_argument("--b", required=True, help="variant B, as --a")
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=8, help="untimed steps of each variant (the heap grows in the first ~10)")
    a = p.parse_args()
    if a.pairs < 1 or a.warmup < 0 or a.batch < 2:
        p.error(f"--pairs {a.pairs} must be >= 1, --warmup {a.warmup} >= 0, --batch {a.batch} >= 2")
    try:
        variants = {"A": parse_variant(a.a), "B": parse_variant(a.b)}
    except ValueError as e:
        p.error(str(e))
    from duality import runtime

    runtime.tune_allocator()  # as the entry points do
    runtime.tune_xla_cpu()
    import jax

    try:
        steps = {k: build(a.encoder, a.batch, *v) for k, v in variants.items()}
    except (ValueError, KeyError) as e:
        p.error(str(e))
    for _ in range(a.warmup):
        steps["A"](), steps["B"]()
    times = {"A": [], "B": []}
    t_start = time.perf_counter()
    for i in range(a.pairs):
        for k in ("AB" if i % 2 == 0 else "BA"):
            t0 = time.perf_counter()
            steps[k]()
            times[k].append(time.perf_counter() - t0)
        r = times["A"][-1] / times["B"][-1]
        eta = (time.perf_counter() - t_start) / (i + 1) * (a.pairs - i - 1)
        print(f"pair {i + 1}/{a.pairs}: A {times['A'][-1] * 1e3:.0f} ms, B {times['B'][-1] * 1e3:.0f} ms, "
              f"A/B {r:.3f}  (ETA {eta:.0f} s)", flush=True)
    ratios = sorted(x / y for x, y in zip(times["A"], times["B"]))
    q = lambda f: ratios[min(len(ratios) - 1, int(f * len(ratios)))]
    print(f"\n{a.encoder}, batch {a.batch} x 2 views, {a.pairs} pairs, jax {jax.__version__}, "
          f"{jax.device_count()} {jax.default_backend()} device(s)")
    print(f"A ({a.a or 'as configured'}): median {statistics.median(times['A']) * 1e3:.0f} ms/step")
    print(f"B ({a.b or 'as configured'}): median {statistics.median(times['B']) * 1e3:.0f} ms/step")
    print(f"A/B per pair: median {statistics.median(ratios):.3f} (quartiles {q(0.25):.3f}-{q(0.75):.3f}); "
          f"above 1: B is faster")


if __name__ == "__main__":
    main()
