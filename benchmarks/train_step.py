"""Training throughput: img/s, compile time, data-wait share, model FLOPs.

  python benchmarks/train_step.py                                  # small encoder, ResNet-18, ResNet-50
  python benchmarks/train_step.py --encoders=resnet50 --batch=256 --image_size=224 --peak_tflops=989

For each encoder: compile time of the sharded step, median step time over
`--steps` timed steps, images/s (each image is two views), the share of
wall time spent producing the host batch and moving it to the devices, and
the step's FLOPs from XLA's cost analysis (on CPU, of the same step with XLA's
own convolutions: oneDNN's custom calls count as zero, benchmarks/flops.py);
with --peak_tflops (the accelerator's dense bf16/fp32 peak) also the
model-FLOPs utilisation.
Data are synthetic (random uint8 images) so the input is never the limit.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root, for configs/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, for flops.py
from configs import base  # noqa: E402
from duality import train

from flops import compiled_flops, has_opaque_calls, with_xla_ops  # noqa: E402


def config(encoder: str, batch: int, size: int, channels: int, dtype: str):
    c = base.get_config("fashion_mnist")
    c.data.name, c.data.image_size, c.data.channels = "synthetic", size, channels
    c.data.global_batch = batch
    c.data.mean, c.data.std = (0.5,) * channels, (0.25,) * channels
    for v in c.data.views:
        v["size"] = size
    c.model.encoder, c.model.dtype = encoder, dtype
    c.model.stem = "cifar" if size <= 64 else "imagenet"
    c.model.projector = "2048-2048-2048" if encoder != "small" else c.model.projector
    c.train.steps = 10**6
    return c


def bench(encoder, a):
    cfg = config(encoder, a.batch, a.image_size, a.channels, a.dtype)
    t = train.Trainer(cfg)
    state = t.init_state(0)
    batch = t.device_batch(t.data.train.batch(0))
    t0 = time.perf_counter()
    compiled = t.compile_step(state, batch)
    compile_s = time.perf_counter() - t0
    flops = compiled_flops(compiled)
    if has_opaque_calls(compiled):  # count the same step with XLA's convolutions (compiled, not run)
        tx = train.Trainer(with_xla_ops(cfg))
        flops = compiled_flops(tx.compile_step(tx.init_state(0), tx.device_batch(tx.data.train.batch(0))))
        del tx
    state, m = t.step_fn(state, batch)  # warm-up
    jax.block_until_ready(m)
    steps, data_s = [], 0.0
    t_all = time.perf_counter()
    for s in range(1, a.steps + 1):
        t0 = time.perf_counter()
        batch = t.device_batch(t.data.train.batch(s))
        t1 = time.perf_counter()
        state, m = t.step_fn(state, batch)
        jax.block_until_ready(m)
        data_s += t1 - t0
        steps.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    med = statistics.median(steps)
    line = (f"{encoder:<9} {a.batch:>6} {a.image_size:>5} {compile_s:>9.1f} {med * 1e3:>10.1f} "
            f"{a.batch / med:>10.1f} {100 * data_s / wall:>8.1f}% {flops / 1e9:>11.1f}")
    if a.peak_tflops:
        line += f" {100 * flops / med / (a.peak_tflops * 1e12) * jax.device_count():>6.1f}%"
    print(line, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoders", default="small,resnet18,resnet50")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--peak_tflops", type=float, default=0.0, help="per-device peak, for MFU")
    a = p.parse_args()
    from duality import runtime

    runtime.tune_allocator()  # as the entry points do (docs/performance.md)
    runtime.tune_xla_cpu()
    print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}) x {jax.device_count()}, "
          f"jax {jax.__version__}, method vicreg, {a.dtype}")
    head = f"{'encoder':<9} {'batch':>6} {'size':>5} {'compile s':>9} {'step ms':>10} {'img/s':>10} {'data':>9} {'GFLOP/step':>11}"
    print(head + (" {:>6}".format("MFU") if a.peak_tflops else ""))
    for enc in a.encoders.split(","):
        bench(enc, a)


if __name__ == "__main__":
    main()
