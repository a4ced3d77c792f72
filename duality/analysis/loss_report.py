"""Every registered loss, and both sides of Theorem 3.3, on synthetic embeddings.

The embedding families bracket what training produces: two noisy views of
i.i.d. Gaussian samples, i.i.d. points on the unit sphere (the optimum of
the InfoNCE uniformity term, Prop. 3.1), and a nearly collapsed batch. Two
shapes exercise both Frobenius routes: N > M (M x M covariances) and N < M
(N x N Gram matrices).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from duality import fileio, losses


def embedding_families(key, n: int, m: int) -> dict[str, tuple[jax.Array, jax.Array]]:
    k1, k2, k3, k4 = jax.random.split(key, 4)
    g = jax.random.normal(k1, (n, m))
    sphere = losses.normalize_embeddings(jax.random.normal(k3, (n, m)))
    center = jax.random.normal(k4, (1, m))
    collapsed = center + 1e-3 * jax.random.normal(k2, (n, m))
    return {
        "gaussian views": (g, g + 0.5 * jax.random.normal(k2, (n, m))),
        "uniform sphere": (sphere, losses.normalize_embeddings(sphere + 0.1 * jax.random.normal(k2, (n, m)))),
        "collapsed": (collapsed, collapsed[::-1]),
    }


def example_inputs(name: str, n: int, m: int, seed: int = 0) -> tuple[dict, dict]:
    """(array inputs, static keywords) of loss `name` beyond z1, z2: its registered example (losses.example)."""
    kw = losses.example(name, n, m, seed).kwargs()
    arrays = {k: jnp.asarray(v) for k, v in kw.items() if isinstance(v, np.ndarray)}
    return arrays, {k: v for k, v in kw.items() if k not in arrays}


def evaluate(n: int, m: int, seed: int = 0) -> dict:
    key = jax.random.key(seed)
    families = embedding_families(key, n, m)
    rows = {}
    for name in losses.names():
        fn = losses.get(name)
        rows[name] = {}
        for fam, (z1, z2) in families.items():
            arrays, static = example_inputs(name, n, m, seed)
            step = jax.jit(lambda a, b, arr: jax.value_and_grad(lambda x: fn(x, b, **arr, **static)[0])(a))
            t0 = time.perf_counter()
            value, grad = jax.block_until_ready(step(z1, z2, arrays))
            rows[name][fam] = dict(value=float(value), finite=bool(np.isfinite(np.asarray(grad)).all()),
                                   seconds=time.perf_counter() - t0)
    theorem = {fam: {k: float(v) for k, v in losses.duality_terms(z1).items()} for fam, (z1, _) in families.items()}
    return dict(n=n, m=m, losses=rows, theorem=theorem, families=list(families))


def format_report(r: dict) -> str:
    fams = r["families"]
    out = [f"\nEvery registered loss at N={r['n']} (batch), M={r['m']} (embedding dim): "
           f"value (gradient finite?)"]
    out.append(f"{'loss':<14}" + "".join(f"{f:>22}" for f in fams))
    for name, row in r["losses"].items():
        out.append(f"{name:<14}" + "".join(
            f"{row[f]['value']:>18.5g} {'ok ' if row[f]['finite'] else 'NaN'}" for f in fams))
    out.append("\nTheorem 3.3 on z1 (K = z1.T): L_nc + sum_j ||K_j.||^4 = L_c + sum_i ||K_.i||^4")
    out.append(f"{'embeddings':<16}{'L_nc':>12}{'sum_j||K_j.||^4':>17}{'left side':>13}"
               f"{'L_c':>12}{'sum_i||K_.i||^4':>17}{'right side':>13}{'rel. diff':>11}")
    for fam, t in r["theorem"].items():
        rel = abs(t["lhs"] - t["rhs"]) / max(abs(t["lhs"]), 1e-30)
        out.append(f"{fam:<16}{t['l_nc']:>12.5g}{t['dimension_quartic']:>17.5g}{t['lhs']:>13.7g}"
                   f"{t['l_c']:>12.5g}{t['sample_quartic']:>17.5g}{t['rhs']:>13.7g}{rel:>11.1e}")
    return "\n".join(out)


def plot_duality(path: str, n: int = 128, dims=(8, 16, 32, 64, 128, 256, 512), seed: int = 0) -> None:
    """L_c and L_nc of unit-norm embeddings against M, with Corollary 3.4.1's band.

    With unit embeddings, L_nc - N + N^2/M <= L_c <= L_nc - N + N^2: the two
    criteria move together, and L_c reaches 0 only when N <= M.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = jax.random.key(seed)
    lc, lnc, sides = [], [], []
    for m in dims:
        z = losses.normalize_embeddings(jax.random.normal(key, (n, m)))
        t = losses.duality_terms(z)
        lc.append(float(t["l_c"]))
        lnc.append(float(t["l_nc"]))
        sides.append((float(t["lhs"]), float(t["rhs"])))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].loglog(dims, lc, "o-", label="L_c (sample-contrastive)")
    ax[0].loglog(dims, lnc, "s-", label="L_nc (dimension-contrastive)")
    ax[0].loglog(dims, [n * (n - 1) / m for m in dims], "k:", label="N(N-1)/M (Prop. 3.1)")
    ax[0].set(xlabel="embedding dim M", ylabel="criterion", title=f"i.i.d. unit embeddings, N={n}")
    ax[0].legend()
    ax[1].loglog(dims, [s[0] for s in sides], "o-", label="L_nc + sum_j ||K_j.||^4")
    ax[1].loglog(dims, [s[1] for s in sides], "x--", label="L_c + sum_i ||K_.i||^4")
    ax[1].set(xlabel="embedding dim M", title="Theorem 3.3: the two sides")
    ax[1].legend()
    fig.tight_layout()
    fileio.save_figure(fig, path, dpi=120)
    plt.close(fig)
