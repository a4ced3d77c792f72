"""Where a training step's time goes: a jax.profiler trace of the project's step, summed by part.

  python benchmarks/profile_step.py                       # the CPU default (small convnet, batch 256, VICReg)
  python benchmarks/profile_step.py --encoder=resnet18 --batch=64 --top=30

Runs `--steps` steps of `train.Trainer.step_fn` under `jax.profiler.trace`
(synthetic 28x28x1 data, so the input pipeline is not in it), reads the
trace's per-op events (XLA:CPU records one per executed thunk: each fusion,
convolution, dot, copy), and attributes each op to a part of the step by its
HLO metadata (the jax source path that produced it): convolution forward /
backward, BatchNorm, projector, loss, augmentation, online probe, optimiser,
other. Prints ms per step per part and the `--top` most expensive ops with
their HLO shapes; the trace directory can also be opened in TensorBoard's
profile plugin or Perfetto. XLA:CPU runs independent ops of one step at the
same time on its two cores, so op times add up to more than the step's wall
time: read the shares, not a sum. The last column is the sum that does
matter once convolutions dominate: the time each part's ops run while no
convolution does (beside a convolution an op is hidden, between two it is
on the step's critical path; ops running together share the time), with
the time in which no op runs at all; with the convolutions' own time the
column adds up to the traced span (first op to last).
Convolutions are recognised by their HLO (XLA's or the oneDNN custom
calls), so ResNet's 1x1 shortcut ("proj") counts as one.

A matrix product (`dot`) runs asynchronously: its event ends once it is
launched on XLA's thread pool (well under a millisecond), and the trace
marks its completion by a separate `end: <op>` event. A product's span runs
from its launch to that completion; counted by the launch alone,
ResNet-18's projector products had shown up as 120-160 ms a step in which
"no op runs" (docs/performance.md, ninth round). (Fusions have completion
events too, but compute inside their own event; their completion can wait
behind a convolution holding the pool, so it is not used.)
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

# (part, test on the op's metadata op_name / op text), first match wins
PARTS = [
    ("augmentation", lambda n: "augment" in n or "vmap(" in n),  # per-image ops (crop, blur) are vmapped
    ("online probe", lambda n: "probe" in n),
    ("optimiser", lambda n: any(k in n for k in ("lars", "sgd", "optax", "apply_updates", "scale_by", "trace"))),
    ("conv backward", lambda n: "transpose(" in n and "/Conv" in n),
    ("conv forward", lambda n: "/Conv" in n),
    ("encoder BatchNorm + ReLU backward", lambda n: "transpose(" in n and "backbone" in n),
    ("encoder BatchNorm + ReLU forward", lambda n: "backbone" in n),
    ("projector backward", lambda n: "transpose(" in n and "/proj" in n),
    ("projector forward", lambda n: "/proj" in n),
    ("loss", lambda n: "loss" in n or "vicreg" in n),
]


def part_of(op_name: str, hlo: str = "") -> str:
    """The part of the step an op belongs to, from its jax source path (`op_name`) and HLO text: a
    convolution is one whatever its module is called (ResNet's 1x1 shortcut is a module named "proj")."""
    if 'custom_call_target="duality_onednn_conv_' in hlo:
        return "conv forward" if "duality_onednn_conv_fwd" in hlo else "conv backward"
    if 'custom_call_target="duality_onednn_bn_' in hlo:  # oneDNN's BatchNorm (+ ReLU), models/norm.py
        return "encoder BatchNorm + ReLU " + ("forward" if "duality_onednn_bn_fwd" in hlo else "backward")
    if " convolution(" in hlo:
        return "conv backward" if "transpose(" in op_name else "conv forward"
    for name, test in PARTS:
        if test(op_name):
            return name
    return "other"


def _time_outside_convolutions(spans):
    """(part -> time it alone holds the cores while no convolution runs, time in which no op runs).

    `spans`: (start, end, part) of every executed op. A sweep over the op boundaries: in each slice
    in which some ops run and none is a convolution, the slice is shared equally among the running
    ops' parts; a slice in which nothing runs (between the first start and the last end) is idle.
    The parts' times and the idle time add up to the wall time outside convolutions.
    """
    marks = sorted({t for a, b, _ in spans for t in (a, b)})
    if not marks:
        return {}, 0.0
    events = collections.defaultdict(list)
    for a, b, part in spans:
        events[a].append((+1, part))
        events[b].append((-1, part))
    running = collections.Counter()
    out, idle = collections.Counter(), 0.0
    for t0, t1 in zip(marks, marks[1:]):
        for sign, part in events[t0]:
            running[part] += sign
        live = {p: n for p, n in running.items() if n > 0}
        if any(p.startswith("conv") for p in live):
            continue
        if not live:
            idle += t1 - t0
            continue
        n = sum(live.values())
        for p, k in live.items():
            out[p] += (t1 - t0) * k / n
    return dict(out), idle


def op_spans(events, names, asynchronous=None) -> list[tuple[float, float, str]]:
    """(start, end, op) of every executed op in `names`; an op in `asynchronous` (all, if None) ends at its
    `end: <op>` event."""
    launches, ends = collections.defaultdict(list), collections.defaultdict(list)
    for e in events:
        if e.get("ph") != "X":
            continue
        name = e.get("name", "")
        if name in names:
            launches[name].append((e["ts"], e["ts"] + e["dur"]))
        elif name.startswith("end: ") and name[5:] in names and (asynchronous is None or name[5:] in asynchronous):
            ends[name[5:]].append(e["ts"] + e["dur"])
    spans = []
    for name, runs in launches.items():
        done, i = sorted(ends.get(name, ())), 0
        runs.sort()
        for k, (a, b) in enumerate(runs):
            while i < len(done) and done[i] < a:  # a completion before this launch belongs to no launch we kept
                i += 1
            nxt = runs[k + 1][0] if k + 1 < len(runs) else float("inf")
            if i < len(done) and done[i] < nxt:  # completed before the op's next launch: this launch's end
                b = max(b, done[i])
                i += 1
            spans.append((a, b, name))
    return spans


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", default="small")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--warm", type=int, default=8, help="untimed steps first: a process's first steps grow the heap")
    p.add_argument("--trace_dir", default="")
    a = p.parse_args()
    import jax

    from duality import runtime, train
    from train_step import config

    runtime.tune_allocator()  # as the entry points do
    runtime.tune_xla_cpu()
    t = train.Trainer(config(a.encoder, a.batch, 28, 1, "float32"))
    state = t.init_state(0)
    batch = t.device_batch(t.data.train.batch(0))
    for _ in range(a.warm):  # compile, warm up, and let the heap reach its size (performance.md, sixth round)
        state, m = t.step_fn(state, batch)
        jax.block_until_ready(m)
    out = a.trace_dir or tempfile.mkdtemp(prefix="duality-profile-")
    t0 = time.perf_counter()
    with jax.profiler.trace(out, create_perfetto_trace=True):
        for _ in range(a.steps):
            state, m = t.step_fn(state, batch)
            jax.block_until_ready(m)
    wall = (time.perf_counter() - t0) / a.steps
    hlo = t.compile_step(state, batch).as_text()
    meta, text = {}, {}
    for line in hlo.splitlines():
        mt = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (.*)", line)
        if mt:
            name = mt.group(1)
            text.setdefault(name, mt.group(2))
            on = re.search(r'op_name="([^"]*)"', line)
            if on and name not in meta:
                meta[name] = on.group(1)
    trace = glob.glob(os.path.join(out, "**", "*.trace.json.gz"), recursive=True)
    if not trace:
        raise SystemExit(f"no trace written under {out}")
    events = json.load(gzip.open(trace[0]))["traceEvents"]
    spans = op_spans(events, text, {n for n, t in text.items() if re.search(r"\bdot\(", t)})
    per_op = collections.Counter()
    for t0, t1, name in spans:
        per_op[name] += (t1 - t0) / 1e3 / a.steps
    parts = collections.Counter()
    for op, ms in per_op.items():
        parts[part_of(meta.get(op, ""), text[op])] += ms
    total = sum(parts.values())
    # The critical path, roughly: the time each part's ops run while no convolution does (convolutions are
    # most of a CPU step; what runs beside them is hidden, what runs between them is not), shared equally
    # among the ops running at that moment so that the column adds up to the wall time it covers.
    alone, idle = _time_outside_convolutions(
        [(t0, t1, part_of(meta.get(name, ""), text[name])) for t0, t1, name in spans])
    alone = {k: v / 1e3 / a.steps for k, v in alone.items()}
    idle /= 1e3 * a.steps
    print(f"{a.encoder}, batch {a.batch} x 2 views, jax {jax.__version__} on {jax.device_count()} "
          f"{jax.default_backend()} device(s); {wall * 1e3:.0f} ms per step under the profiler; op time summed "
          f"{total:.0f} ms per step (ops overlap on the cores); trace: {out}\n")
    print("| part of the step | op ms per step | share | ms while no convolution runs |")
    print("|---|---:|---:|---:|")
    for name, ms in parts.most_common():
        print(f"| {name} | {ms:.0f} | {100 * ms / total:.0f}% | {alone.get(name, 0.0):.0f} |")
    print(f"| (no op running: dispatch, host) | | | {idle:.0f} |")
    print(f"\n| op | ms per step | part | HLO |\n|---|---:|---|---|")
    for op, ms in per_op.most_common(a.top):
        print(f"| {op} | {ms:.1f} | {part_of(meta.get(op, ''), text[op])} | `{text[op][:90]}` |")
    others = [(op, ms) for op, ms in per_op.most_common() if part_of(meta.get(op, ""), text[op]) == "other"][:8]
    print("\nlargest ops in 'other' (jax source path):")
    for op, ms in others:
        print(f"  {op:28s} {ms:6.1f} ms  {meta.get(op, '(no metadata)')[:110]}")


if __name__ == "__main__":
    main()
