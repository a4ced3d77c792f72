"""How hard does each VICReg variant's covariance term push? Gradient norms against VICReg's.

  python -m duality.analysis.cov_gradients [--workdir=DIR] [--batch=256]

VICReg-exp (eq. 11-12) replaces VICReg's sum_{i != j} C_ij^2 / M by
(1/M) sum_i logsumexp_{j != i} C_ij / tau. Expanding the log-sum-exp to second
order in C / tau (its cumulants) gives log(M - 1) + mean_j C_ij / tau +
var_j(C_ij) / (2 tau^2): VICReg's penalty with an effective coefficient of
1 / (2 tau^2 (M - 1)), about 0.05 at tau = 0.1 and M = 1024. With the same
cov_coeff, the variant's decorrelation is then a twentieth of VICReg's, and
comparing the two measures the coefficient rather than the log-sum-exp.

This tool measures that ratio instead of trusting the expansion: for
embeddings z (a trained checkpoint's projector outputs on test images, or
correlated Gaussian ones), the norm of d(cov_coeff * cov)/dz for each variant
and temperature over the same norm for VICReg (cov_coeff 1), and the
cov_coeff that would make the two equal. VICReg-ctr's term acts on the
N x N Gram of samples, so its ratio is reported the same way.
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from duality import losses

TEMPERATURES = (0.05, 0.1, 0.2, 0.5, 1.0)


def cov_gradient_norm(name: str, z, partner, **hparams) -> float:
    """||d(cov_coeff * cov) / dz|| for loss `name` (its invariance and variance terms switched off)."""
    fn = losses.get(name)

    def cov_only(x):
        return fn(x, partner, sim_coeff=0.0, std_coeff=0.0, **hparams)[0]

    return float(jnp.linalg.norm(jax.grad(cov_only)(z)))


def ratios(z, partner, temperatures=TEMPERATURES) -> list[dict]:
    """One row per (variant, tau): gradient norm over VICReg's, and the cov_coeff that equalises them."""
    ref = cov_gradient_norm("vicreg", z, partner, cov_coeff=1.0)
    m = z.shape[1]
    rows = []
    for name in ("vicreg_exp", "vicreg_ctr"):
        for tau in temperatures:
            r = cov_gradient_norm(name, z, partner, cov_coeff=1.0, temperature=tau) / ref
            rows.append({"loss": name, "temperature": tau, "ratio": r, "matching_cov_coeff": 1.0 / r,
                         "second_order_ratio": 1.0 / (2 * tau ** 2 * (m - 1)) if name == "vicreg_exp" else None})
    return rows


def synthetic(n: int = 256, m: int = 1024, seed: int = 0):
    """Two correlated views of Gaussian embeddings whose covariance spectrum decays like a trained projector's."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(m, m)))[0]
    scales = 1.0 / np.sqrt(1.0 + np.arange(m) / 8.0)
    z = (rng.normal(size=(n, m)) * scales) @ basis.T
    return jnp.asarray(z, jnp.float32), jnp.asarray(z + 0.3 * rng.normal(size=(n, m)) * scales @ basis.T, jnp.float32)


def from_checkpoint(workdir: str, n: int = 256, seed: int = 0, split: str = "test"):
    """Projector outputs of the config's two augmented views of `n` images of `split`, from a trained run."""
    from duality import data, pretrained

    enc = pretrained.load(workdir)
    cfg = enc.config
    ds = data.build(cfg.data, cfg.data.global_batch, cfg.seed)
    images = (ds.train_arrays if split == "train" else ds.test_arrays)["image"]
    idx = np.sort(np.random.default_rng(seed).choice(len(images), min(n, len(images)), replace=False))
    z1, z2 = enc.encode_views(images[idx], seed=seed)
    return jnp.asarray(z1), jnp.asarray(z2)


def format_rows(rows: list[dict]) -> str:
    lines = ["| loss | tau | grad ratio vs VICReg (cov_coeff 1) | cov_coeff for equal gradient | 2nd-order ratio |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        so = f"{r['second_order_ratio']:.4f}" if r["second_order_ratio"] is not None else "-"
        lines.append(f"| {r['loss']} | {r['temperature']:g} | {r['ratio']:.4f} | {r['matching_cov_coeff']:.3g} | "
                     f"{so} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="", help="a trained run (default: correlated Gaussian embeddings)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dim", type=int, default=1024, help="embedding dimension of the synthetic embeddings")
    a = p.parse_args(argv)
    z, partner = from_checkpoint(a.workdir, a.batch) if a.workdir else synthetic(a.batch, a.dim)
    print(f"embeddings: {'checkpoint ' + a.workdir if a.workdir else 'synthetic'}, N={z.shape[0]}, M={z.shape[1]}")
    print(format_rows(ratios(z, partner)))


if __name__ == "__main__":
    main()
