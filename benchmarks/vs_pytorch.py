"""One training step, JAX against a PyTorch twin, timed side by side on the same cores.

  pip install torch --index-url https://download.pytorch.org/whl/cpu     # the `bench` extra, CPU build
  python benchmarks/vs_pytorch.py                        # small convnet and ResNet-18 (CIFAR stem)
  python benchmarks/vs_pytorch.py --models=small --steps=20 --rounds=5

For each model (the CPU default's small convnet 32-64-128-256 and ResNet-18 with
the CIFAR stem, each with the 1024-1024-1024 projector), batch `--batch` x 2
views of 28x28x1:

* torch channels_last / torch default layout: the twin (same layers, same
  initial weights copied from the JAX model, VICReg, SGD with momentum),
  `torch.set_num_threads(--threads)`;
* jax model step: the same step written with the project's modules
  (`models.build`, `losses.get("vicreg")`, optax SGD with momentum, `jax.jit`,
  donated buffers), no augmentation;
* jax full step: the project's own training step (`train.Trainer.step_fn`:
  augmentation on device, online linear probe, health metrics, LARS), what
  `python -m duality.main` runs.

Each variant runs in its own process (as a user would time each framework),
and the variants are timed in interleaved rounds (each round runs `--steps`
steps of every variant after its warm-up of `--warmup` untimed steps, the
others waiting), so a machine that slows down slows all of them; the figure is
the median step time, and beside it the range of the ratio measured within
each round. Every
process gets the project's allocator and XLA settings (`duality.runtime`), the
PyTorch ones too. Before timing, the twin is checked:
parameter counts equal, and the VICReg loss of the first step on the same
inputs equal to float32 round-off. Prints ms/step, img/s (an image is counted
once though it has two views, as everywhere in this project), each variant's
speed relative to PyTorch channels_last, and TFLOP/s: the model step's
arithmetic by XLA's count (convolutions at 2 FLOPs a multiply-add, counted
with XLA's own ops: benchmarks/flops.py) over the variant's step time, the
same work for every variant (the full step's augmentation, probe and LARS add
little), so it says how close each comes to what the cores can do.
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
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # flops.py

PROJECTOR = "1024-1024-1024"


# ----------------------------------------------------------------------------- the PyTorch twin
def torch_twin(encoder: str, widths=(32, 64, 128, 256), projector=PROJECTOR, channels=1):
    import torch
    from torch import nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)  # torch's momentum 0.1 = flax's 0.9

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], channels
            for i, w in enumerate(widths):
                layers += [nn.Conv2d(c, w, 3, 1 if i == 0 else 2, 1, bias=False), bn(w), nn.ReLU(inplace=True)]
                c = w
            self.body = nn.Sequential(*layers)
            self.dim = 2 * widths[-1]

        def forward(self, x):
            x = self.body(x)
            return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv0, self.bn0 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn(cout)
            self.conv1, self.bn1 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), bn(cout)
            self.proj = None
            if cin != cout or stride != 1:
                self.proj, self.proj_bn = nn.Conv2d(cin, cout, 1, stride, 0, bias=False), bn(cout)

        def forward(self, x):
            y = torch.relu(self.bn0(self.conv0(x)))
            y = self.bn1(self.conv1(y))
            if self.proj is not None:
                x = self.proj_bn(self.proj(x))
            return torch.relu(x + y)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.stem_bn = nn.Conv2d(channels, 64, 3, 1, 1, bias=False), bn(64)
            blocks, c = [], 64
            for i in range(4):
                for j in range(2):
                    blocks.append(Block(c, 64 * 2 ** i, 2 if i > 0 and j == 0 else 1))
                    c = 64 * 2 ** i
            self.blocks = nn.Sequential(*blocks)
            self.dim = 512

        def forward(self, x):
            return self.blocks(torch.relu(self.stem_bn(self.stem(x)))).mean((2, 3))

    class Projector(nn.Module):
        def __init__(self, cin):
            super().__init__()
            ws = [int(w) for w in projector.split("-")]
            layers = []
            for i, w in enumerate(ws):
                last = i == len(ws) - 1
                layers.append(nn.Linear(cin, w, bias=not last))
                if not last:
                    layers += [nn.BatchNorm1d(w, eps=1e-5, momentum=0.1), nn.ReLU(inplace=True)]
                cin = w
            self.body = nn.Sequential(*layers)

        def forward(self, h):
            return self.body(h)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Small() if encoder == "small" else ResNet18()
            self.proj = Projector(self.backbone.dim)

        def forward(self, x):
            return self.proj(self.backbone(x))

    return Model()


def torch_vicreg(z1, z2, sim=25.0, std=25.0, cov=1.0, gamma=1.0, eps=1e-4):
    """VICReg as the official implementation writes it (what duality.losses.vicreg is tested against)."""
    import torch
    import torch.nn.functional as F

    n, m = z1.shape
    inv = F.mse_loss(z1, z2)

    def var(z):
        return F.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()

    def cov_term(z):
        z = z - z.mean(dim=0)
        c = z.T @ z / (n - 1)
        return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / m

    return sim * inv + std * (var(z1) + var(z2)) / 2 + cov * (cov_term(z1) + cov_term(z2))


def copy_weights(params, model, encoder: str) -> None:
    """The JAX model's initial parameters into the twin (HWIO -> OIHW, [in, out] -> [out, in])."""
    import torch

    def conv(dst, k):
        dst.weight.data = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(k), (3, 2, 0, 1))))

    def bn(dst, p):
        dst.weight.data = torch.from_numpy(np.array(p["scale"]))
        dst.bias.data = torch.from_numpy(np.array(p["bias"]))

    b = params["backbone"]
    if encoder == "small":
        convs = [m for m in model.backbone.body if isinstance(m, torch.nn.Conv2d)]
        bns = [m for m in model.backbone.body if isinstance(m, torch.nn.BatchNorm2d)]
        for i, (c, n) in enumerate(zip(convs, bns)):
            conv(c, b[f"Conv_{i}"]["kernel"])
            bn(n, b[f"BatchNorm_{i}"])
    else:
        conv(model.backbone.stem, b["stem"]["kernel"])
        bn(model.backbone.stem_bn, b["stem_bn"])
        for i, blk in enumerate(model.backbone.blocks):
            p = b[f"BasicBlock_{i}"]
            conv(blk.conv0, p["Conv_0"]["kernel"])
            bn(blk.bn0, p["BatchNorm_0"])
            conv(blk.conv1, p["Conv_1"]["kernel"])
            bn(blk.bn1, p["BatchNorm_1"])
            if blk.proj is not None:
                conv(blk.proj, p["proj"]["kernel"])
                bn(blk.proj_bn, p["proj_bn"])
    lin = [m for m in model.proj.body if isinstance(m, torch.nn.Linear)]
    bns = [m for m in model.proj.body if isinstance(m, torch.nn.BatchNorm1d)]
    for i, layer in enumerate(lin):
        d = params["proj"][f"Dense_{i}"]
        layer.weight.data = torch.from_numpy(np.ascontiguousarray(np.asarray(d["kernel"]).T))
        if layer.bias is not None:
            layer.bias.data = torch.from_numpy(np.array(d["bias"]))
    for i, n in enumerate(bns):
        bn(n, params["proj"][f"BatchNorm_{i}"])


def torch_step_fn(model, lr: float = 0.01):
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step(x1, x2):
        opt.zero_grad(set_to_none=True)
        loss = torch_vicreg(model(x1), model(x2))
        loss.backward()
        opt.step()
        return loss.detach()

    return step


# ----------------------------------------------------------------------------- the JAX steps
def model_config(encoder: str, batch: int):
    from configs import base

    c = base.get_config("fashion_mnist")
    c.data.name, c.data.global_batch = "synthetic", batch
    c.data.train_subset = max(batch * 4, 1024)
    c.model.encoder, c.model.projector, c.model.stem = encoder, PROJECTOR, "cifar"
    c.train.steps = 10 ** 6
    c.optim.warmup_steps = 1
    return c


def jax_model_step(encoder: str, batch: int, lr: float = 0.01, xla_ops: bool = False):
    """(step, params, batch_stats, opt_state): the model step written with the project's modules
    (with `xla_ops`, its convolutions and BatchNorm as XLA's own ops, for counting FLOPs)."""
    import jax
    import optax

    from duality import losses, models
    from flops import with_xla_ops

    config = model_config(encoder, batch)
    cfg = (with_xla_ops(config) if xla_ops else config).model
    model = models.build(cfg)
    x = np.zeros((2, 28, 28, 1), np.float32)
    variables = model.init(jax.random.PRNGKey(0), x, train=True)
    params, stats = variables["params"], variables["batch_stats"]
    tx = optax.sgd(lr, momentum=0.9)
    loss_fn = losses.get("vicreg")

    def objective(params, stats, x1, x2):
        o1, s1 = model.apply({"params": params, "batch_stats": stats}, x1, train=True, mutable=["batch_stats"])
        o2, s2 = model.apply({"params": params, "batch_stats": s1["batch_stats"]}, x2, train=True,
                             mutable=["batch_stats"])
        loss, _ = loss_fn(o1["z"], o2["z"])
        return loss, s2["batch_stats"]

    def step(params, stats, opt, x1, x2):
        (loss, stats), g = jax.value_and_grad(objective, has_aux=True)(params, stats, x1, x2)
        updates, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, updates), stats, opt, loss

    return jax.jit(step, donate_argnums=(0, 1, 2)), params, stats, tx.init(params)


# ----------------------------------------------------------------------------- timing
def timed(fn, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def check_twin(encoder: str, batch: int, path: str) -> None:
    """Build the JAX model and its twin, check them equal, save the twin's initial weights to `path`
    and the model step's FLOPs (XLA's count, `flops.py`) to `path`.flops."""
    import jax
    import torch

    from flops import compiled_flops

    rng = np.random.default_rng(0)
    x1, x2 = (rng.normal(size=(batch, 28, 28, 1)).astype(np.float32) for _ in range(2))
    jstep, params, stats, opt = jax_model_step(encoder, batch)
    twin = torch_twin(encoder)
    n_jax = sum(int(np.size(p)) for p in jax.tree.leaves(params))
    n_torch = sum(p.numel() for p in twin.parameters())
    if n_jax != n_torch:
        raise SystemExit(f"{encoder}: the twin has {n_torch} parameters, the JAX model {n_jax}")
    copy_weights(jax.device_get(params), twin, encoder)
    t1, t2 = (torch.from_numpy(np.ascontiguousarray(v.transpose(0, 3, 1, 2))) for v in (x1, x2))
    with torch.no_grad():
        ref = float(torch_vicreg(twin.train()(t1), twin(t2)))
    first = float(jstep(params, stats, opt, jax.device_put(x1), jax.device_put(x2))[3])
    if abs(first - ref) > 1e-4 * max(1.0, abs(ref)):
        raise SystemExit(f"{encoder}: the twin's first loss {ref:.6f} differs from the JAX model's {first:.6f}")
    torch.save(twin.state_dict(), path)
    xstep, xparams, xstats, xopt = jax_model_step(encoder, batch, xla_ops=True)
    flops = compiled_flops(xstep.lower(xparams, xstats, xopt, x1, x2).compile())
    with open(path + ".flops", "w") as f:
        f.write(repr(flops))
    print(f"{encoder}: twin checked ({n_jax:,} parameters each; first-step VICReg loss {first:.5f} JAX, "
          f"{ref:.5f} PyTorch); the model step is {flops / 1e9:,.0f} GFLOP by XLA's count", flush=True)


def make_variant(name: str, encoder: str, batch: int, twin_path: str, threads: int):
    """One variant's step as a zero-argument callable, built inside the process that times it."""
    rng = np.random.default_rng(0)
    x1, x2 = (rng.normal(size=(batch, 28, 28, 1)).astype(np.float32) for _ in range(2))
    if name.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
        fmt = torch.channels_last if name == "torch channels_last" else torch.contiguous_format
        m = torch_twin(encoder)
        m.load_state_dict(torch.load(twin_path))
        m = m.to(memory_format=fmt).train()
        a1, a2 = (torch.from_numpy(np.ascontiguousarray(v.transpose(0, 3, 1, 2))).contiguous(memory_format=fmt)
                  for v in (x1, x2))
        step = torch_step_fn(m)
        return lambda: float(step(a1, a2))
    import jax

    if name == "jax model step":
        jstep, params, stats, opt = jax_model_step(encoder, batch)
        state = {"p": params, "s": stats, "o": opt}
        jx1, jx2 = jax.device_put(x1), jax.device_put(x2)

        def model_step():
            state["p"], state["s"], state["o"], loss = jstep(state["p"], state["s"], state["o"], jx1, jx2)
            jax.block_until_ready(loss)

        return model_step
    from duality import train  # the project's full step: augmentation, online probe, health metrics, LARS

    cfg = model_config(encoder, batch)
    if name == "jax full step, XLA BatchNorm":
        cfg.model.norm_impl = "xla"
    tr = train.Trainer(cfg)
    fstate = {"s": tr.init_state(0)}
    fbatch = tr.device_batch(tr.data.train.batch(0))

    def full_step():
        fstate["s"], m = tr.step_fn(fstate["s"], fbatch)
        jax.block_until_ready(m)

    return full_step


def worker(conn, name, encoder, batch, twin_path, threads, warmup):
    """A variant's own process: build, warm up, then time `n` steps whenever the parent asks."""
    from duality import runtime

    runtime.tune_allocator()  # in every worker, PyTorch's too (it allocates through the same glibc malloc)
    runtime.tune_xla_cpu()
    fn = make_variant(name, encoder, batch, twin_path, threads)
    for _ in range(warmup):  # compilation, then the heap's growth to its steady size (docs/performance.md)
        fn()
    conn.send("ready")
    while (n := conn.recv()) is not None:
        conn.send(timed(fn, n))


VARIANTS = ("torch channels_last", "torch default layout", "jax model step", "jax full step")
# --with-xla-batchnorm adds the full step with XLA's BatchNorm (model.norm_impl="xla") in place of oneDNN's
XLA_BN = "jax full step, XLA BatchNorm"


def bench(encoder: str, a) -> list[dict]:
    """Each variant in its own process, timed in interleaved rounds: one framework's threads, heap and
    caches never sit in the other's process (in one shared process the JAX steps ran up to 1.2x slower
    after PyTorch's; docs/performance.md, fourth round), while every variant sees the same machine state."""
    import multiprocessing as mp
    import tempfile

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        twin_path = os.path.join(tmp, "twin.pt")
        proc = ctx.Process(target=check_twin, args=(encoder, a.batch, twin_path))  # both frameworks, then gone
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"{encoder}: the twin check failed (exit code {proc.exitcode})")
        with open(twin_path + ".flops") as f:
            flops = float(f.read())
        workers = {}
        variants = tuple(v for v in VARIANTS if v in a.variants) + ((XLA_BN,) if a.with_xla_batchnorm else ())
        for name in variants:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(child, name, encoder, a.batch, twin_path, a.threads, a.warmup), daemon=True)
            p.start()
            if parent.recv() != "ready":
                raise SystemExit(f"{encoder}: {name} did not start")
            workers[name] = (p, parent)  # started one at a time: compilations do not overlap
        rounds = {k: [] for k in variants}  # per variant, each round's step times
        for _ in range(a.rounds):
            for name, (_, conn) in workers.items():  # one variant runs at a time; the others wait on a pipe
                conn.send(a.steps)
                rounds[name].append(conn.recv())
        for p, conn in workers.values():
            conn.send(None)
            p.join()
    times = {k: [t for r in rs for t in r] for k, rs in rounds.items()}
    base = statistics.median(times["torch channels_last"])
    rows = []
    for k, ts in times.items():
        med = statistics.median(ts)
        # the ratio within each round, where both ran in the same phase of the machine
        per_round = [statistics.median(b) / statistics.median(r) for b, r in zip(rounds["torch channels_last"], rounds[k])]
        rows.append(dict(model=encoder, variant=k, ms=1e3 * med, img_s=a.batch / med, ratio=base / med, tflops=flops / med / 1e12,
                         spread=(1e3 * min(ts), 1e3 * max(ts)), rounds=(min(per_round), max(per_round))))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="small,resnet18")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=12,
                   help="untimed steps per variant first: compilation, then the heap's growth to its steady size "
                        "(ResNet-18's JAX process grows by 2.3 GB once, at step 2-10: one 10-12 s step)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated, from: " + ", ".join(VARIANTS) + " (torch channels_last is the base and "
                        "always runs); fewer processes, less memory: ResNet-18's JAX processes hold 6-10 GB each")
    p.add_argument("--with-xla-batchnorm", action="store_true",
                   help="also time the full step with XLA's BatchNorm instead of oneDNN's (models/norm.py), "
                        "in one more process")
    a = p.parse_args()
    a.variants = ["torch channels_last"] + [v.strip() for v in a.variants.split(",") if v.strip() != "torch channels_last"]
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(VARIANTS)}")
    for flag in ("batch", "steps", "rounds", "warmup", "threads"):
        if getattr(a, flag) < 1:
            p.error(f"--{flag}={getattr(a, flag)}: must be at least 1")  # exit code 2, before anything runs
    from importlib.metadata import version

    print(f"jax {version('jax')} (CPU, 1 device); torch {version('torch')} ({a.threads} threads); {os.cpu_count()} "
          f"CPU cores; batch {a.batch} x 2 views of 28x28x1; {a.warmup} untimed steps, then the median of {a.rounds} x "
          f"{a.steps} steps per variant, each "
          f"variant in its own process, interleaved", flush=True)
    rows = []
    for enc in a.models.split(","):
        rows += bench(enc, a)
    print("\n| model | step | ms/step | img/s | TFLOP/s | vs PyTorch channels_last | ratio per round, min-max | fastest-slowest ms |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['variant']} | {r['ms']:.0f} | {r['img_s']:.0f} | {r['tflops']:.3f} | {r['ratio']:.2f}x | "
              f"{r['rounds'][0]:.2f}-{r['rounds'][1]:.2f}x | {r['spread'][0]:.0f}-{r['spread'][1]:.0f} |")


if __name__ == "__main__":
    main()
