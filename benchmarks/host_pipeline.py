"""Host-side input throughput of the streaming sources (ImageNet-style JPEGs).

  python benchmarks/host_pipeline.py                       # 2 global views at 224, then + 6 local views at 96
  python benchmarks/host_pipeline.py --threads=1 --images=256

tfds_stream decodes each JPEG once on the host and random-resized-crops every
view from it; everything else happens on the accelerator. This measures that
host work alone (the per-example function the Stream maps, batched as in
training) on synthetic JPEGs of ImageNet's typical size (500x375, quality 90,
smooth content plus noise, ~100 KB like real photos), so the figure says how
many host cores a given accelerator throughput needs. Reading the records
from disk is not included.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from duality.data import tfds_stream  # noqa: E402


def jpegs(n: int, h: int, w: int, seed: int = 0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.5, 4, 3)
        img = np.stack([np.sin(a * x * 6 + b), np.cos(b * y * 6 + c), np.sin(c * (x + y) * 4)], -1) * 100 + 128
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        out.append(tf.io.encode_jpeg(img, quality=90).numpy())
    return out


def run(encoded, views, local, batch: int, threads: int, repeats: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices({"image": encoded, "label": np.zeros(len(encoded), np.int64)})
    ds = ds.repeat(repeats).enumerate()
    fn = tfds_stream.example_fn(views, local, list(range(1, 1 + len(views) + len(local))), 3)
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch, drop_remainder=True)
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = threads
    ds = ds.with_options(opts).prefetch(2)
    it = iter(ds)
    next(it)  # warm-up (graph tracing, thread pool)
    t0, n = time.perf_counter(), 0
    for b in it:
        n += int(b["views"].shape[0])
    return n / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=512, help="distinct JPEGs (cycled)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="tf.data threads")
    p.add_argument("--size", type=int, default=224)
    a = p.parse_args()
    enc = jpegs(a.images, 375, 500)
    print(f"{a.images} synthetic JPEGs 500x375, mean {np.mean([len(e) for e in enc]) / 1e3:.0f} KB; "
          f"{a.threads} tf.data thread(s) on {os.cpu_count()} cores")
    rrc = ((0.08, 1.0), (3 / 4, 4 / 3))
    local = [(a.size * 96 // 224, (0.05, 0.14), (3 / 4, 4 / 3))] * 6
    print(f"{'views':<28} {'img/s':>8} {'img/s/thread':>13}")
    for name, v, lv in [(f"2 x {a.size}", [(a.size, *rrc)] * 2, []),
                        (f"2 x {a.size} + 6 x {local[0][0]}", [(a.size, *rrc)] * 2, local)]:
        rate = run(enc, v, lv, a.batch, a.threads, a.repeats)
        print(f"{name:<28} {rate:>8.0f} {rate / a.threads:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
