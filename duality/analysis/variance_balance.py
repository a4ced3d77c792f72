"""Does VICReg's variance term do its job? Where the three terms balance on a trained projector's output.

  python -m duality.analysis.variance_balance --workdir=DIR [--samples=2048] [--batch=256] [--out=scan.json]

VICReg's variance term is a hinge, mean_j max(0, 1 - std_j(z)) (Bardes et al. 2022, eq. 1), zero once
every dimension's std reaches 1. On Fashion-MNIST it ends training at 0.5-0.6 (per-dimension std about
0.45), which reads like an objective that is never met. This tool asks the loss itself: it multiplies
the checkpoint's projector outputs of two augmented views by a scale a and evaluates the loss, batch by
batch at the training batch size, for a on a grid. If the loss is smallest near a = 1, the run sits at
the loss's own equilibrium and the hinge's residual is the price of the other terms, not unfinished
optimisation. The invariance term grows like a^2 and the covariance term, sum_{i != j} C_ij^2 / M, like
a^4, so a projector whose dimensions stay correlated pays more in covariance for a larger scale than
the hinge gives back.

It also reports the covariance term's floor at the measured scale: a batch of N < M samples has a
covariance matrix of rank r <= N - 1, whose off-diagonal energy cannot fall below
((sum_i C_ii)^2 / r - sum_i C_ii^2) / M however the dimensions are arranged (summed over the two
branches, as VICReg's covariance term is). The distance between the
covariance term and that floor is the redundancy the projector keeps.
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from duality import fileio, losses
from duality.analysis import cov_gradients

SCALES = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0)


def covariance_floor(z) -> float:
    """The least sum_{i != j} C_ij^2 / M for any z of this batch's rank and per-dimension variances."""
    z = np.asarray(z, np.float64)
    n, m = z.shape
    diag = z.var(0, ddof=1)
    r = min(n - 1, m)
    return float(max(diag.sum() ** 2 / r - (diag ** 2).sum(), 0.0) / m)


def scale_scan(z1, z2, name: str = "vicreg", scales=SCALES, batch: int = 256, **hparams) -> list[dict]:
    """For each scale a: the loss and its terms on (a z1, a z2), averaged over consecutive batches of `batch`."""
    fn = jax.jit(lambda x, y: losses.get(name)(x, y, axis_name=None, **hparams))
    n = (len(z1) // batch) * batch
    if n == 0:
        raise ValueError(f"variance_balance: {len(z1)} samples, fewer than one batch of {batch}")
    rows = []
    for a in scales:
        per = []
        for s in range(0, n, batch):
            loss, aux = fn(a * jnp.asarray(z1[s:s + batch]), a * jnp.asarray(z2[s:s + batch]))
            per.append({"loss": float(loss), **{k: float(v) for k, v in aux.items()}})
        rows.append({"scale": float(a), **{k: float(np.mean([p[k] for p in per])) for k in per[0]}})
    return rows


def summary(z1, z2, rows: list[dict], batch: int = 256) -> dict:
    """The scale where the loss is least, per-dimension stds, and the covariance term against its floor."""
    best = min(rows, key=lambda r: r["loss"])
    std = np.asarray(z1, np.float64).std(0)
    n = (len(z1) // batch) * batch
    # VICReg's covariance term is c(z1) + c(z2): its floor is the sum of the two branches' floors.
    floor = float(np.mean([covariance_floor(z1[s:s + batch]) + covariance_floor(z2[s:s + batch])
                           for s in range(0, n, batch)]))
    at_one = min(rows, key=lambda r: abs(r["scale"] - 1.0))
    return {"best_scale": best["scale"], "std": {"min": float(std.min()), "median": float(np.median(std)),
                                                 "max": float(std.max())},
            "scale_for_unit_median_std": float(1.0 / np.median(std)),
            "cov_at_scale_1": at_one.get("cov"), "cov_floor_at_scale_1": floor, "batch": batch,
            "dim": int(np.shape(z1)[1]), "samples": int(n)}


def format_rows(rows: list[dict], s: dict) -> str:
    keys = [k for k in rows[0] if k not in ("scale", "loss")]
    lines = ["| scale | loss | " + " | ".join(keys) + " |", "|---:|---:|" + "---:|" * len(keys)]
    for r in rows:
        mark = " **(least)**" if r["scale"] == s["best_scale"] else ""
        lines.append(f"| {r['scale']:g}{mark} | {r['loss']:.3f} | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |")
    lines += ["", f"per-dimension std of z: min {s['std']['min']:.3f}, median {s['std']['median']:.3f}, "
              f"max {s['std']['max']:.3f} (unit median std at scale {s['scale_for_unit_median_std']:.2f}); "
              f"covariance term at scale 1 (both branches): {s['cov_at_scale_1']:.3f}, its floor for batches of "
              f"{s['batch']} in {s['dim']} dimensions: {s['cov_floor_at_scale_1']:.3f}"]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="a trained VICReg-family run")
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--batch", type=int, default=0, help="batch of the loss (default: the run's global batch)")
    p.add_argument("--out", default="", help="also write the scan and summary as JSON here")
    a = p.parse_args(argv)
    if a.samples < 1 or a.batch < 0:
        p.error(f"--samples={a.samples} --batch={a.batch}: need samples >= 1 and batch >= 0 (0 = the run's batch)")
    from duality import pretrained

    cfg = pretrained.read_config(a.workdir)
    batch = a.batch or int(cfg.data.global_batch)
    if a.samples < batch:  # exit 2 before any work or output
        p.error(f"--samples={a.samples} is fewer than one loss batch of {batch}: pass --samples >= {batch} "
                f"or a smaller --batch")

    z1, z2 = (np.asarray(z) for z in cov_gradients.from_checkpoint(a.workdir, a.samples, split="train"))
    hparams = dict(cfg.method.get("loss", {}) or {})
    rows = scale_scan(z1, z2, cfg.method.name, batch=batch, **hparams)
    s = summary(z1, z2, rows, batch)
    print(f"{cfg.method.name}: {a.workdir}, {s['samples']} training images x 2 views, M={s['dim']}")
    print(format_rows(rows, s))
    if a.out:  # through fileio, so that --out may be a gs:// or s3:// path like the workdir
        fileio.write_text(a.out, json.dumps({"rows": rows, "summary": s}, indent=2))


if __name__ == "__main__":
    main()
