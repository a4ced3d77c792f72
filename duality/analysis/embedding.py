"""What a trained encoder's embeddings look like: `--mode=analyze`.

On a seeded sample of test images (`samples`, default 2048: the scale of a
training batch, where the paper's quantities are defined), from the
representation h (what probes see) and the projector output z (what the
loss saw):

* spectrum: singular values of the centred matrix (dimensional collapse
  shows as a cliff; plotted) and the effective rank RankMe = exp(entropy of
  sigma / sum sigma) of the raw, uncentred matrix, as RankMe is defined
  (Garrido et al. 2023b); the centred value is reported beside it;
* per-dimension standard deviation (dead dimensions);
* alignment E||u - u+||^2 over positive pairs (two augmented views, the
  config's own recipe) and uniformity log E exp(-2 ||u_i - u_j||^2) over
  distinct images, u = z / ||z|| (Wang & Isola 2020, alpha = 2, t = 2);
* L_c and L_nc of K = normalised embeddings (Def. 3.2) with both sides of
  Theorem 3.3 computed on their own routes, and the quartic sums against
  their Lemma 3.4 lower bounds: with unit embeddings,
  sum_j ||K_j.||^4 / (N^2 / M); with unit-norm dimensions,
  sum_i ||K_.i||^4 / (M^2 / N). The paper reports trained runs within a
  single-digit factor of the lower bounds;
* Proposition 3.1: mean and variance of the negative-pair dot products
  u_i . u_j (i != j) against 0 and 1/M, the values uniform embeddings on
  the sphere give.
"""
from __future__ import annotations

import json

import numpy as np

from duality import fileio
from duality.losses import criteria


def effective_rank(singular_values) -> float:
    """RankMe: exp of the entropy of the normalised singular values."""
    s = np.asarray(singular_values, np.float64)
    p = s / max(s.sum(), 1e-300) + 1e-12
    return float(np.exp(-np.sum(p * np.log(p))))


def spectrum(x, center: bool = True) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.linalg.svd(x - x.mean(0) if center else x, compute_uv=False)


def unit(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def alignment(u1, u2) -> float:
    return float(np.mean(np.sum((unit(u1) - unit(u2)) ** 2, axis=1)))


def uniformity(u, t: float = 2.0) -> float:
    u = unit(u)
    sq = np.maximum(2.0 - 2.0 * (u @ u.T), 0.0)  # ||u_i - u_j||^2 for unit vectors
    off = ~np.eye(len(u), dtype=bool)
    v = -t * sq[off]
    return float(np.log(np.mean(np.exp(v - v.max()))) + v.max())


def negative_pairs(u) -> dict:
    """Proposition 3.1's statistics of u_i . u_j over distinct images."""
    u = unit(u)
    m = u.shape[1]
    dots = (u @ u.T)[~np.eye(len(u), dtype=bool)]
    return {"mean": float(dots.mean()), "var": float(dots.var()), "one_over_m": 1.0 / m,
            "var_times_m": float(dots.var() * m)}


def duality(z) -> dict:
    """Theorem 3.3 and Lemma 3.4 on K = normalised embeddings (float32, the library's routes)."""
    import jax.numpy as jnp

    n, m = z.shape
    k = jnp.asarray(unit(z), jnp.float32)
    t = {key: float(v) for key, v in criteria.duality_terms(k).items()}
    t["relative_residual"] = abs(t["lhs"] - t["rhs"]) / max(abs(t["lhs"]), 1e-30)
    b = {key: float(v) for key, v in criteria.norm_coupling_bounds(k).items()}
    t["dimension_quartic_over_lower"] = b["dimension_quartic"] / b["dimension_lower"]  # unit embeddings
    # Unit-norm dimensions: scale each column of z (each row of K) to norm 1.
    d = np.asarray(z, np.float64)
    d = d / np.maximum(np.linalg.norm(d, axis=0, keepdims=True), 1e-12)
    bd = {key: float(v) for key, v in criteria.norm_coupling_bounds(jnp.asarray(d, jnp.float32)).items()}
    t["sample_quartic_over_lower_unit_dims"] = bd["sample_quartic"] / bd["sample_lower"]
    t["n"], t["m"] = n, m
    return t


def analyze(encoder, images, samples: int = 2048, seed: int = 0) -> tuple[dict, dict]:
    """(JSON-ready report, arrays for plotting) for `encoder` (duality.load) on `images`."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(images), min(samples, len(images)), replace=False))
    images = np.asarray(images)[idx]
    out = encoder.encode(images)
    z1, z2 = encoder.encode_views(images, seed=seed)
    report, arrays = {"samples": int(len(idx)), "step": int(encoder.step)}, {}
    for name in ("h", "z"):
        x = out[name]
        s = spectrum(x)
        std = np.sort(np.asarray(x, np.float64).std(0))[::-1]
        arrays[f"{name}_spectrum"], arrays[f"{name}_std"] = s, std
        report[name] = {
            "dim": int(x.shape[1]), "effective_rank": effective_rank(spectrum(x, center=False)),
            "effective_rank_centred": effective_rank(s),
            "top_singular_value_share": float(s[0] / s.sum()),
            "std": {"max": float(std[0]), "median": float(np.median(std)), "min": float(std[-1]),
                    "below_1pct_of_median": int(np.sum(std < 0.01 * np.median(std)))}}
    report["alignment"] = alignment(z1, z2)
    report["uniformity"] = uniformity(out["z"])
    report["negative_pairs"] = negative_pairs(out["z"])
    report["duality"] = duality(out["z"])
    u = unit(out["z"])
    arrays["negative_dots"] = (u @ u.T)[~np.eye(len(u), dtype=bool)]
    return report, arrays


def plot(arrays: dict, report: dict, path: str, title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for name, style in (("h", "-"), ("z", "--")):
        s = arrays[f"{name}_spectrum"]
        ax[0].semilogy(np.arange(1, len(s) + 1), s / s[0], style,
                       label=f"{name} (D={len(s)}, RankMe {report[name]['effective_rank']:.0f})")
        std = arrays[f"{name}_std"]
        ax[1].semilogy(np.arange(1, len(std) + 1), np.maximum(std, 1e-12), style, label=name)
    ax[0].set(xlabel="index", ylabel="singular value / largest", title="spectrum (centred)")
    ax[1].set(xlabel="dimension (sorted)", ylabel="standard deviation", title="per-dimension std")
    for a in ax[:2]:
        a.legend()
    dots, m = arrays["negative_dots"], report["z"]["dim"]
    ax[2].hist(dots, bins=100, density=True, alpha=0.7, label="u_i . u_j, i != j")
    grid = np.linspace(dots.min(), dots.max(), 200)
    ax[2].plot(grid, np.sqrt(m / (2 * np.pi)) * np.exp(-m * grid ** 2 / 2), "k--", label="N(0, 1/M)")
    ax[2].set(xlabel="dot product", title=f"negative pairs (Prop. 3.1): var x M = "
                                          f"{report['negative_pairs']['var_times_m']:.2f}")
    ax[2].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fileio.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def write(report: dict, path: str) -> str:
    fileio.write_text(path, json.dumps(report, indent=2))
    return path


def analyze_workdir(workdir: str, step: int | None = None, samples: int = 2048, seed: int = 0) -> dict:
    """analyze() on the test split of the run in `workdir`; writes analysis_step<S>.json and .png there."""
    import jax

    from duality import data, pretrained

    enc = pretrained.load(workdir, step)
    cfg = enc.config
    test = data.build(cfg.data, cfg.data.global_batch, cfg.seed).test_arrays
    report, arrays = analyze(enc, test["image"], samples, seed)
    report.update(method=cfg.method.name, data=cfg.data.name)
    if jax.process_index() == 0:
        write(report, fileio.join(workdir, f"analysis_step{enc.step}.json"))
        report["plot"] = plot(arrays, report, fileio.join(workdir, f"analysis_step{enc.step}.png"),
                              f"{cfg.method.name} on {cfg.data.name}, step {enc.step}")
    return report


def format_report(r: dict) -> str:
    d, npairs = r["duality"], r["negative_pairs"]
    return "\n".join([
        f"  effective rank (RankMe)   h {r['h']['effective_rank']:.1f} / {r['h']['dim']}   "
        f"z {r['z']['effective_rank']:.1f} / {r['z']['dim']}",
        f"  dead dimensions (<1% of median std)   h {r['h']['std']['below_1pct_of_median']}   "
        f"z {r['z']['std']['below_1pct_of_median']}",
        f"  alignment {r['alignment']:.4f}   uniformity {r['uniformity']:.4f}",
        f"  L_c {d['l_c']:.6g}   L_nc {d['l_nc']:.6g}   (N={d['n']}, M={d['m']}, unit embeddings)",
        f"  Theorem 3.3: L_nc + sum_j ||K_j||^4 = {d['lhs']:.8g}   L_c + sum_i ||K_i||^4 = {d['rhs']:.8g}"
        f"   (relative gap {d['relative_residual']:.1e})",
        f"  Lemma 3.4: sum_j ||K_j||^4 / lower bound = {d['dimension_quartic_over_lower']:.2f} (unit embeddings); "
        f"sum_i ||K_i||^4 / lower bound = {d['sample_quartic_over_lower_unit_dims']:.2f} (unit dimensions)",
        f"  Prop. 3.1: negative-pair dot products mean {npairs['mean']:.4f}, var {npairs['var']:.3g} "
        f"= {npairs['var_times_m']:.2f} / M",
    ])
