"""The spectral-embedding check of Balestriero & LeCun (2022) on a small data set.

  python -m duality.analysis.spectral_check [--originals=32 --views=8 --dim=96 --k=64 --out=docs/spectral_check]

Paper 2 reads SSL losses as spectral embedding methods on the positive-pair
graph G: at the optimum the top left singular vectors of Z align with G's
top eigenvectors; SimCLR and Barlow Twins make rank(Z) = rank of that
spectral embedding, while VICReg can keep Z full rank (Balestriero & LeCun 2022,
their closed-form results).

Set-up (N' originals, V augmented views each, N = N' V rows):
* X: the views (this code's augmentation recipe for 28x28 grayscale),
  flattened, centred and reduced by PCA to `dim` dimensions (so a linear
  map can reach any rank up to `dim`);
* G (N x N): G_ij = 1 iff rows i != j are views of the same original, a
  union of N' cliques; its top eigenvalue V - 1 has multiplicity N', with
  the originals' indicator vectors as eigenvectors: that N'-dimensional
  space is G's spectral embedding (r_G = N');
* Z = X W, W (dim x k) trained full-batch with Adam on paper 2's
  graph forms of the losses (as paper 2 writes them), written here from those
  formulas: every edge of G is a positive pair at once, which the two-view
  losses of duality.losses cannot express when an original has more than
  two views in the batch (its other views would count as negatives):
    VICReg  alpha sum_k relu(1 - sqrt(Cov_kk)) + beta sum_{k!=j} Cov_kj^2
            + (gamma / N) sum_ij G_ij ||Z_i - Z_j||^2
            (alpha = 25, beta = 1; gamma = 25, and gamma = 1 for the
            "small invariance weight" the paper singles out);
    SimCLR  -(1/N) sum_ij G_ij log Ghat_ij, Ghat_ij = softmax over k != i
            of cos(z_i, z_k) / tau, tau = 0.1;
    BT      sum_k (C_kk - 1)^2 + alpha sum_{k!=k'} C_kk'^2, C the cosine
            similarity between columns of Z_left and Z_right (rows = the
            edges of G), alpha = 0.0051 (uncentred columns, as paper 2
            writes it; the original Barlow Twins standardises them).

Reported per method: rank(Z) (singular values above 1% of the largest) and
RankMe, beside r_G and rank(G); the principal angles between Z's top
min(rank(Z), r_G - 1) left singular vectors and (a) G's spectral embedding
without its constant direction (X is centred, so Z cannot contain it),
(b) the spectral embedding a linear map can reach: top eigenvectors of G
restricted to span(X) (Z = XW cannot leave it; paper 2's "optimal network
parameters in the linear regime"). k > r_G, so
the rank question is not decided by k. Our construction (the clique graph,
PCA, Adam, step count) is a choice: the paper's own experimental set-up was
not available to us, so it says what the claims predict here, not what the
paper measured.
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from duality import fileio
from duality.analysis.embedding import effective_rank



def vicreg_g(z, g, alpha=25.0, beta=1.0, gamma=25.0):
    n = z.shape[0]
    zc = z - z.mean(0)
    cov = zc.T @ zc / (n - 1)
    var = jnp.sum(jax.nn.relu(1.0 - jnp.sqrt(jnp.diag(cov) + 1e-4)))
    off = jnp.sum(jnp.square(cov)) - jnp.sum(jnp.square(jnp.diag(cov)))
    sq = jnp.sum(z * z, 1)
    dirichlet = jnp.sum(g * (sq[:, None] + sq[None, :] - 2.0 * z @ z.T))  # sum_ij G_ij ||z_i - z_j||^2
    return alpha * var + beta * off + gamma / n * dirichlet


def simclr_g(z, g, tau=0.1):
    u = z / jnp.linalg.norm(z, axis=1, keepdims=True)
    logits = jnp.where(jnp.eye(z.shape[0], dtype=bool), -jnp.inf, u @ u.T / tau)
    log_ghat = jax.nn.log_softmax(logits, axis=1)
    return -jnp.sum(jnp.where(g > 0, g * log_ghat, 0.0)) / z.shape[0]


def barlow_g(z, g, alpha=0.0051, edges=None):
    left, right = z[edges[0]], z[edges[1]]
    c = (left.T @ right) / (jnp.linalg.norm(left, axis=0)[:, None] * jnp.linalg.norm(right, axis=0)[None, :] + 1e-8)
    on = jnp.sum(jnp.square(jnp.diag(c) - 1.0))
    return on + alpha * (jnp.sum(jnp.square(c)) - jnp.sum(jnp.square(jnp.diag(c))))


METHODS = {"vicreg": (vicreg_g, {}), "vicreg_small_inv": (vicreg_g, {"gamma": 1.0}),
           "simclr": (simclr_g, {}), "barlow_twins": (barlow_g, {})}


def clique_graph(n_originals: int, views: int) -> np.ndarray:
    """G for row r = view * n_originals + original: 1 between distinct views of one original."""
    orig = np.tile(np.arange(n_originals), views)
    g = (orig[:, None] == orig[None, :]).astype(np.float64)
    np.fill_diagonal(g, 0.0)
    return g


def spectral_embedding(g: np.ndarray, r: int) -> np.ndarray:
    """The top-r eigenvectors of the symmetric G (orthonormal columns)."""
    w, v = np.linalg.eigh(g)
    return v[:, np.argsort(-w)[:r]]


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the column spans of a and b."""
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cos = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0)
    return np.sort(np.degrees(np.arccos(cos)))


def numerical_rank(x: np.ndarray, rel: float = 1e-2) -> int:
    s = np.linalg.svd(x, compute_uv=False)
    return int(np.sum(s > rel * s[0])) if s[0] > 0 else 0


def views_of(images: np.ndarray, views: int, seed: int) -> np.ndarray:
    """[N', H, W, 1] uint8 images -> [V * N', H*W] float views (row v * N' + i) from the grayscale recipe."""
    from duality.data import augment as aug

    spec = aug.grayscale_small_views(images.shape[1])[0]
    key = jax.random.PRNGKey(seed)
    out = [np.asarray(aug.augment(jax.random.fold_in(key, v), jnp.asarray(images), spec, (0.0,), (1.0,)))
           for v in range(views)]
    return np.concatenate(out).reshape(views * len(images), -1)


def pca(x: np.ndarray, dim: int) -> np.ndarray:
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    x = u[:, :dim] * s[:dim]
    return x / np.sqrt(np.mean(np.sum(x * x, axis=1)))  # unit mean squared row norm


def train_linear(x: np.ndarray, g: np.ndarray, k: int, method: str, steps: int, lr: float, seed: int) -> np.ndarray:
    """W (dim x k) trained full-batch on the graph form of `method`; returns Z = X W."""
    fn, kw = METHODS[method]
    if fn is barlow_g:
        kw = dict(kw, edges=tuple(jnp.asarray(e) for e in np.nonzero(g)))
    xj, gj = jnp.asarray(x, jnp.float32), jnp.asarray(g, jnp.float32)
    w = jax.random.normal(jax.random.PRNGKey(seed), (x.shape[1], k)) / np.sqrt(x.shape[1])
    tx = optax.adam(lr)

    @jax.jit
    def step(w, opt):
        value, grad = jax.value_and_grad(lambda w: fn(xj @ w, gj, **kw))(w)
        upd, opt = tx.update(grad, opt, w)
        return optax.apply_updates(w, upd), opt, value

    opt = tx.init(w)
    for _ in range(steps):
        w, opt, _ = step(w, opt)
    return np.asarray(x @ np.asarray(w, np.float64))


def run(images: np.ndarray, views: int = 8, dim: int = 96, k: int = 64, steps: int = 2000, lr: float = 1e-2,
        seed: int = 0, methods=tuple(METHODS)) -> dict:
    n_orig = len(images)
    if not n_orig < k <= dim:
        raise ValueError(f"need originals ({n_orig}) < k ({k}) <= dim ({dim}) so that rank is not set by k")
    x = pca(views_of(images, views, seed), dim)
    g = clique_graph(n_orig, views)
    eig = np.linalg.eigvalsh(g)
    r_g = int(np.sum(np.isclose(eig, views - 1)))
    # X is centred, so Z = XW is orthogonal to the all-ones vector, which lies in G's top eigenspace
    # (the sum of the cliques' indicators): compare with that eigenspace minus the ones direction,
    # r_G - 1 dimensions, the part a centred representation can reach.
    centre = np.eye(len(g)) - 1.0 / len(g)
    emb = spectral_embedding(centre @ g @ centre, r_g - 1)
    r_t = r_g - 1
    out = {"originals": n_orig, "views": views, "dim": dim, "k": k, "steps": steps,
           "rank_G": int(np.linalg.matrix_rank(g)), "r_G": r_g, "r_target": r_t, "methods": {}}
    # What a linear map can reach: Z = X W lies in span(X), so the best it can do is the top
    # eigenvectors of G restricted to that span (Q^T G Q, Q an orthonormal basis of span(X)): the
    # linear (kernel-LPP-like) spectral embedding.
    q, _ = np.linalg.qr(x)
    w_lin, v_lin = np.linalg.eigh(q.T @ g @ q)
    emb_lin = q @ v_lin[:, np.argsort(-w_lin)[:r_t]]
    rng = np.random.default_rng(seed)
    z0 = x @ rng.normal(size=(dim, k))
    for name, z in [("random W", z0)] + [(m, None) for m in methods]:
        if z is None:
            z = train_linear(x, g, k, name, steps, lr, seed)
        u, s, _ = np.linalg.svd(z, full_matrices=False)
        rank = numerical_rank(z)
        top = u[:, :max(1, min(rank, r_t))]  # Z's significant directions, at most r_G - 1 of them
        ang, ang_lin = principal_angles(top, emb), principal_angles(top, emb_lin)
        out["methods"][name] = {"subspace_dim": int(top.shape[1]),
                                "angle_to_G_mean_deg": float(ang.mean()), "angle_to_G_max_deg": float(ang.max()),
                                "angle_to_linear_G_mean_deg": float(ang_lin.mean()),
                                "angle_to_linear_G_max_deg": float(ang_lin.max()),
                                "rank_Z": rank, "rankme_Z": effective_rank(s),
                                "singular_values": (s / s[0]).tolist()}
    return out


def format_report(r: dict) -> str:
    lines = [f"{r['originals']} originals x {r['views']} views, X reduced to {r['dim']} dims, Z = X W with "
             f"k = {r['k']}; G: rank {r['rank_G']}, spectral embedding r_G = {r['r_G']} "
             f"({r['r_target']} orthogonal to the constant vector, which centred X cannot reach)",
             "  principal angles between Z's top min(rank(Z), r_G - 1) left singular vectors and G's spectral "
             "embedding, and the one a linear map can reach (within span(X)):",
             f"  {'W':<17} {'rank(Z)':>7} {'RankMe':>7} {'to G: mean':>11} {'max':>6} {'to linear G: mean':>18} {'max':>6}"]
    for name, m in r["methods"].items():
        lines.append(f"  {name:<17} {m['rank_Z']:>7d} {m['rankme_Z']:>7.1f} {m['angle_to_G_mean_deg']:>10.1f}° "
                     f"{m['angle_to_G_max_deg']:>5.1f}° {m['angle_to_linear_G_mean_deg']:>17.1f}° "
                     f"{m['angle_to_linear_G_max_deg']:>5.1f}°")
    return "\n".join(lines)


def plot(r: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, m in r["methods"].items():
        s = np.asarray(m["singular_values"])
        ax.semilogy(np.arange(1, len(s) + 1), np.maximum(s, 1e-8), label=f"{name} (rank {m['rank_Z']})")
    ax.axvline(r["r_G"], color="k", ls=":", label=f"r_G = {r['r_G']}")
    ax.set(xlabel="index", ylabel="singular value of Z / largest", title="Z = XW: spectrum after training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fileio.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--originals", type=int, default=32)
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--dim", type=int, default=96)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_dir", default=None, help="Fashion-MNIST directory (default: Debian's)")
    p.add_argument("--out", default="", help="write <out>.json and <out>.png")
    a = p.parse_args()
    from duality.data import fashion_mnist

    train = fashion_mnist.load("train", a.data_dir)
    idx = np.random.default_rng(a.seed).choice(len(train["label"]), a.originals, replace=False)
    r = run(train["image"][idx], a.views, a.dim, a.k, a.steps, seed=a.seed)
    print(format_report(r))
    if a.out:
        fileio.write_text(a.out + ".json", json.dumps(r, indent=2))
        print(f"written: {a.out}.json, {plot(r, a.out + '.png')}")


if __name__ == "__main__":
    main()
