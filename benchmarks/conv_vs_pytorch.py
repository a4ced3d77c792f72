"""The smallest programs of a training step, JAX against PyTorch on the same cores: where XLA:CPU itself
is slower.

  python benchmarks/conv_vs_pytorch.py                 # every layer of the small convnet and its projector
  python benchmarks/conv_vs_pytorch.py --batch=512 --rounds=5
  python benchmarks/conv_vs_pytorch.py --layers=resnet18   # one of each distinct 3x3 convolution of ResNet-18

Each row is one layer of the CPU default's model at batch `--batch` (28x28x1 input): a 3x3
convolution, a BatchNorm + ReLU, or a Linear, timed forward alone and forward + backward (gradients
with respect to input and weights of a fixed random output gradient: not of sum(output), whose constant
gradient XLA simplifies), jitted in JAX and in eager
PyTorch (channels_last for convolutions, its faster layout here). Interleaved rounds, median times.
The output is a table of ms and the JAX / PyTorch time ratio, so the gap is located layer by layer
rather than guessed (docs/performance.md).
"""
from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
from vs_pytorch import ROOT, timed  # noqa: F401  (benchmarks/ is this script's folder; ROOT on sys.path)

# (name, kind, input shape NHWC or [N, C], output channels, stride) of the small convnet + projector at 28x28
LAYERS = [("conv1 1->32 s1 28x28", "conv", (28, 28, 1), 32, 1),
          ("conv2 32->64 s2 28x28", "conv", (28, 28, 32), 64, 2),
          ("conv3 64->128 s2 14x14", "conv", (14, 14, 64), 128, 2),
          ("conv4 128->256 s2 7x7", "conv", (7, 7, 128), 256, 2),
          ("bn+relu 28x28x32", "bn", (28, 28, 32), 32, 1),
          ("bn+relu 14x14x64", "bn", (14, 14, 64), 64, 1),
          ("linear 512->1024", "dense", (512,), 1024, 1),
          ("linear 1024->1024", "dense", (1024,), 1024, 1)]
# ResNet-18 with the CIFAR stem at 28x28: one of each distinct 3x3 convolution
RESNET18 = [("stem 1->64 s1 28x28", "conv", (28, 28, 1), 64, 1),
            ("layer1 64->64 s1 28x28", "conv", (28, 28, 64), 64, 1),
            ("layer2 64->128 s2 28x28", "conv", (28, 28, 64), 128, 2),
            ("layer2 128->128 s1 14x14", "conv", (14, 14, 128), 128, 1),
            ("layer3 128->256 s2 14x14", "conv", (14, 14, 128), 256, 2),
            ("layer3 256->256 s1 7x7", "conv", (7, 7, 256), 256, 1),
            ("layer4 256->512 s2 7x7", "conv", (7, 7, 256), 512, 2),
            ("layer4 512->512 s1 4x4", "conv", (4, 4, 512), 512, 1)]


def jax_fns(kind, shape, cout, stride, batch, impl="auto"):
    """Forward and forward+backward callables; impl "auto" = the project's modules, "xla" = XLA's
    convolution gradients and flax's BatchNorm (the state before issue 14)."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from duality.models.conv import conv2d
    from duality.models.norm import BatchNorm

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, *shape)).astype(np.float32))
    if kind == "conv":
        w = jnp.asarray(rng.normal(size=(3, 3, shape[-1], cout)).astype(np.float32) * 0.1)

        def f(x, w):
            return conv2d(x, w, (stride, stride), (1, 1), backward=impl)
    elif kind == "bn":
        w = jnp.ones((shape[-1],), jnp.float32)
        bn = nn.BatchNorm(momentum=0.9, epsilon=1e-5) if impl == "xla" else BatchNorm()  # flax's, or the project's
        stats = {"mean": jnp.zeros_like(w), "var": jnp.ones_like(w)}

        def f(x, w):
            y, _ = bn.apply({"params": {"scale": w, "bias": jnp.zeros_like(w)}, "batch_stats": stats}, x,
                            use_running_average=False, mutable=["batch_stats"]) if impl == "xla" else bn.apply(
                {"params": {"scale": w, "bias": jnp.zeros_like(w)}, "batch_stats": stats}, x, mutable=["batch_stats"])
            return jax.nn.relu(y)
    else:
        w = jnp.asarray(rng.normal(size=(shape[-1], cout)).astype(np.float32) * 0.03)

        def f(x, w):
            return x @ w

    fwd = jax.jit(f)
    # a random output gradient: with the gradient of sum(output), a constant, XLA simplified the backward
    # pass (the first three rounds' tables flattered XLA by up to 2.4x; docs/performance.md, fourth round)
    out = jax.eval_shape(f, x, w)
    g = jnp.asarray(rng.normal(size=out.shape).astype(np.float32))
    def fwd_bwd(x, w, g):  # the output is returned too: a convolution is linear, and its gradients alone
        y, pull = jax.vjp(f, x, w)  # do not need the forward pass, which XLA would then skip (torch runs it)
        return y, pull(g)

    both = jax.jit(fwd_bwd)
    return (lambda: jax.block_until_ready(fwd(x, w))), (lambda: jax.block_until_ready(both(x, w, g)))


def torch_fns(kind, shape, cout, stride, batch):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    if kind in ("conv", "bn"):
        x = torch.randn(batch, shape[-1], shape[0], shape[1], generator=g).contiguous(
            memory_format=torch.channels_last)
    else:
        x = torch.randn(batch, shape[-1], generator=g)
    if kind == "conv":
        w = (torch.randn(cout, shape[-1], 3, 3, generator=g) * 0.1).contiguous(memory_format=torch.channels_last)

        def f(x, w):
            return F.conv2d(x, w, stride=stride, padding=1)
    elif kind == "bn":
        w = torch.ones(shape[-1])

        def f(x, w):
            return F.relu(F.batch_norm(x, None, None, w, None, training=True, eps=1e-5))
    else:
        w = torch.randn(shape[-1], cout, generator=g) * 0.03

        def f(x, w):
            return x @ w

    def fwd():
        with torch.no_grad():
            f(x, w)

    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    with torch.no_grad():
        gy = torch.randn(f(x, w).shape, generator=g)
    if kind in ("conv", "bn"):
        gy = gy.contiguous(memory_format=torch.channels_last)

    def both():
        xg.grad = wg.grad = None
        f(xg, wg).backward(gy)

    return fwd, both


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--layers", default="small", help="small (the CPU default's layers), resnet18, or both: small,resnet18")
    a = p.parse_args()
    from duality import runtime

    runtime.tune_allocator()  # as the entry points do (docs/performance.md); the same process runs both frameworks
    runtime.tune_xla_cpu()
    import jax
    import torch

    torch.set_num_threads(a.threads)
    print(f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), batch {a.batch}; "
          f"median of {a.rounds} x {a.steps} calls, interleaved")
    print("\nJAX = the project's modules (models/conv.py, models/norm.py); XLA = lax.conv's own gradients and "
          "flax's BatchNorm, as before issue 14. Ratios are JAX time / torch time (below 1: JAX faster).")
    print("\n| layer | JAX fwd ms | torch fwd ms | JAX/torch fwd | XLA fwd+bwd ms | JAX fwd+bwd ms | torch fwd+bwd ms "
          "| XLA/torch fwd+bwd | JAX/torch fwd+bwd |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    layers = {"small": LAYERS, "resnet18": RESNET18}
    for name, kind, shape, cout, stride in [row for key in a.layers.split(",") for row in layers[key]]:
        fns = dict(zip(("jf", "jb"), jax_fns(kind, shape, cout, stride, a.batch)))
        fns["xb"] = jax_fns(kind, shape, cout, stride, a.batch, impl="xla")[1]
        fns.update(zip(("tf", "tb"), torch_fns(kind, shape, cout, stride, a.batch)))
        times = {k: [] for k in fns}
        for _ in range(a.rounds):
            for k, fn in fns.items():
                fn()  # warm-up (the first call compiles)
                times[k] += timed(fn, a.steps)
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        print(f"| {name} | {ms['jf']:.2f} | {ms['tf']:.2f} | {ms['jf'] / ms['tf']:.2f} | {ms['xb']:.2f} | "
              f"{ms['jb']:.2f} | {ms['tb']:.2f} | {ms['xb'] / ms['tb']:.2f} | {ms['jb'] / ms['tb']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
