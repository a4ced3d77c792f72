"""Probing frozen features, and the online probe trained during pretraining.

Linear probe: features standardised with the training split's statistics, a
multinomial logistic regression solved to convergence with full-batch L-BFGS
(optax.lbfgs; the L2 penalty chosen on a held-out part of train, never on
test, along a warm-started regularisation path). A probe trained with
a fixed budget of SGD/Adam epochs reports how far its optimiser got as much
as how good the features are: on the default checkpoint a 30-epoch AdamW probe
read 1.0 point below the converged regression. kNN:
temperature-weighted votes of the nearest training features by cosine
similarity, as in Wu et al. 2018 (InstDisc) and DINO's evaluation, k = 20
and 200, temperature 0.07. Few-label probes: the same linear probe on a
class-balanced 1% / 10% of the training labels.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from duality.losses import collectives as cl


def online_loss(params, h, labels, axis_name=None):
    """Cross-entropy of the online linear probe, mean over the labelled rows of the global batch.

    Label -1 marks an unlabelled image (STL-10's pretraining split); such rows
    are ignored. Returns (per-device loss, logits): like every loss here, a
    per-device value, so `pmean` of per-device gradients is exact.
    """
    labelled = labels >= 0
    n = jnp.maximum(cl.batch_sum(labelled.astype(jnp.float32), axis_name), 1.0)
    logits = h @ params["w"] + params["b"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
    return cl.per_device(cl.batch_sum(jnp.where(labelled, ce, 0.0), axis_name) / n, axis_name), logits


def online_accuracy(logits, labels, axis_name=None):
    """Top-1 of the online probe over the labelled rows of the global batch."""
    labelled = labels >= 0
    hits = cl.batch_sum(((jnp.argmax(logits, -1) == labels) & labelled).astype(jnp.float32), axis_name)
    return hits / jnp.maximum(cl.batch_sum(labelled.astype(jnp.float32), axis_name), 1.0)


# L2 penalties (on the mean cross-entropy) the held-out split chooses from. For reference, scikit-learn's
# LogisticRegression(C=1) on n examples is l2 = 1 / n: 1.9e-5 on 54,000 Fashion-MNIST images.
L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
# L-BFGS stopping rule: the norm of the objective's gradient in W below TOL, or an iteration cap. On the
# default checkpoint's 512-d features (l2 1e-4) 50 iterations give test top-1 90.58%, 200 give 90.62% at
# gradient norm 4e-4: the last digits of the objective move the accuracy by hundredths of a point. The
# 1024-d features of the wider VICReg encoder need more: 300 iterations left the gradient at 4e-4 (91.02%),
# 623 reached 2e-5 (91.03%), so the cap is 1000 and a finished probe reports converged.
MAX_ITER, TOL = 1000, 1e-4
# Choosing the penalty needs only the held-out ranking, which 100 iterations settle (the chosen one is then
# refitted on all of train from that solution, up to MAX_ITER): the end-of-run probes take a third of the time.
SELECT_ITER = 100


def standardize(train_x, *others):
    train_x = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    return [jnp.asarray((train_x - mean) / std)] + [
        jnp.asarray((np.asarray(x, np.float32).reshape(len(x), -1) - mean) / std) for x in others]


def objective(params, x, y, l2):
    """Mean softmax cross-entropy + l2 / 2 * ||W||_F^2 (the bias is not penalised)."""
    ce = optax.softmax_cross_entropy_with_integer_labels(x @ params["w"] + params["b"], y).mean()
    return ce + 0.5 * l2 * jnp.sum(jnp.square(params["w"]))


_gram = jax.jit(lambda x: x.T @ x / x.shape[0])


def preconditioner(xs, floor: float = 1e-3):
    """P = V (Lambda + floor * mean(Lambda))^(-1/2), from the eigendecomposition of X^T X / n.

    L-BFGS on the raw features converges slowly when they are correlated (the
    curvature of the cross-entropy follows X^T X): on a 512-d SSL
    representation the gradient norm was still 6e-4 after 1000 iterations.
    Writing W = P U and optimising U sees the features X P, nearly white, and
    converges in tens to a few hundred iterations. The objective, and so the
    optimum W, is unchanged: the penalty is still on W = P U. The floor keeps
    P bounded on rank-deficient features (dead units, constant pixels).
    """
    # The Gram matrix in float32 (a product XLA runs fast; 10x the float64 NumPy one), its eigenvectors in
    # float64: P only conditions the problem, the objective and its optimum do not depend on it.
    gram = np.asarray(_gram(jnp.asarray(xs, jnp.float32)), np.float64)
    eig, vec = np.linalg.eigh(gram)
    eig = np.maximum(eig, 0.0)
    return jnp.asarray(vec / np.sqrt(eig + floor * max(eig.mean(), 1e-12)), jnp.float32)


def fit(xs, ys, num_classes: int, l2s, max_iter: int = MAX_ITER, tol: float = TOL, init=None):
    """Multinomial logistic regressions, one per L2 penalty, each solved with full-batch L-BFGS.

    optax.lbfgs with its zoom line search (strong Wolfe) on the preconditioned
    problem (see `preconditioner`: same objective, same optimum), until the
    gradient norm is below `tol` or `max_iter` iterations. The penalties are
    solved in turn inside one compiled `lax.scan`, strongest first, each
    started from the previous solution (a warm-started regularisation path).
    Solving them side by side with `vmap` was 2.5x slower on a CPU: the
    batched line searches run in lock-step with the slowest. `init`
    ({"w", "b"}) starts the path elsewhere than zero. Returns (params with a
    leading penalty axis, in the order of `l2s`; {"iterations", "grad_norm"
    (of the objective in W), "objective"} per penalty).
    """
    n, d = xs.shape
    l2s = np.asarray(l2s, np.float32)
    order = np.argsort(-l2s, kind="stable")
    p = preconditioner(xs)
    if init is None:
        u0 = {"w": jnp.zeros((d, num_classes)), "b": jnp.zeros((num_classes,))}
    else:  # U = P^-1 W
        u0 = {"w": jnp.linalg.solve(p, jnp.asarray(init["w"], jnp.float32)), "b": jnp.asarray(init["b"], jnp.float32)}
    xs = jnp.asarray(xs, jnp.float32)
    xp = _product(xs, p)
    params, info = _path(xs, xp, _transposed(xp), jnp.asarray(ys, jnp.int32), p, u0, jnp.asarray(l2s[order]),
                         int(max_iter), float(tol))
    undo = np.argsort(order)
    return jax.tree.map(lambda a: a[undo], params), jax.tree.map(lambda a: a[undo], info)


_product = jax.jit(jnp.matmul)
# A separate program, so that XLA cannot fold the transpose back into the gradient's product (see `_logits`).
_transposed = jax.jit(lambda a: a.T.copy())


@jax.custom_vjp
def _logits(w, xp, xp_t):
    """X P U, whose gradient in U is (X P)^T G computed from a stored row-major (X P)^T.

    Differentiated as written, the gradient is a product contracting the
    long (example) axis of X P, which XLA:CPU runs on its generic path: a
    value and gradient took 130 ms on 54,000 x 512 features against 25 ms for
    the value alone. With the transpose made once per probe it takes 45 ms,
    and the L-BFGS probe about half the time; the result is the same product.
    """
    return xp @ w


def _logits_fwd(w, xp, xp_t):
    return xp @ w, xp_t


def _logits_bwd(xp_t, g):
    return xp_t @ g, None, None


_logits.defvjp(_logits_fwd, _logits_bwd)


@partial(jax.jit, static_argnums=(7, 8))
def _path(xs, xp, xp_t, ys, p, u0, l2s, max_iter, tol):
    solver = optax.lbfgs()
    scale = 1.0 / jnp.linalg.norm(p, axis=0)  # s: P's columns are V's, divided by s

    def solve(u_start, l2):
        def fun(u):  # objective(W = P U) on the features X, evaluated as (X P) U
            ce = optax.softmax_cross_entropy_with_integer_labels(_logits(u["w"], xp, xp_t) + u["b"], ys).mean()
            return ce + 0.5 * l2 * jnp.sum(jnp.square(p @ u["w"]))

        value_and_grad = optax.value_and_grad_from_state(fun)

        def step(carry):
            u, state = carry
            value, grad = value_and_grad(u, state=state)
            updates, state = solver.update(grad, state, u, value=value, grad=grad, value_fn=fun)
            return optax.apply_updates(u, updates), state

        def going(carry):
            _, state = carry
            count = optax.tree_utils.tree_get(state, "count")
            g = optax.tree_utils.tree_get(state, "grad")
            # The rule is on the objective's gradient in W, the one reported: with P = V diag(1 / s) and
            # W = P U, dL/dW = V diag(s) dL/dU, whose norm is that of s * dL/dU (V is orthogonal).
            gnorm = jnp.sqrt(jnp.sum(jnp.square(scale[:, None] * g["w"])) + jnp.sum(jnp.square(g["b"])))
            return (count == 0) | ((count < max_iter) & (gnorm >= tol))

        u, state = jax.lax.while_loop(going, step, (u_start, solver.init(u_start)))
        w = {"w": p @ u["w"], "b": u["b"]}
        gnorm = optax.tree_utils.tree_norm(jax.grad(objective)(w, xs, ys, l2))
        info = {"iterations": optax.tree_utils.tree_get(state, "count"), "grad_norm": gnorm,
                "objective": objective(w, xs, ys, l2)}
        return u, (w, info)

    return jax.lax.scan(solve, u0, l2s)[1]


def _accuracy(logits, y) -> dict:
    top5 = jnp.argsort(-logits, axis=1)[:, :5]
    return {"top1": float(jnp.mean(jnp.argmax(logits, 1) == y) * 100),
            "top5": float(jnp.mean(jnp.any(top5 == y[:, None], axis=1)) * 100)}


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int, l2=L2_GRID, holdout: float = 0.1,
                 seed: int = 0, max_iter: int = MAX_ITER, tol: float = TOL,
                 select_iter: int = SELECT_ITER) -> dict:
    """Top-1 and top-5 (%) of a converged linear classifier on frozen, standardised features.

    A multinomial logistic regression solved with L-BFGS (`fit`), so the
    number measures the features and not the probe's optimiser. Features are
    standardised with the training split's mean and std. l2: one penalty, or
    a sequence to choose from: each candidate is fitted on train minus a
    random `holdout` fraction, the best on the held-out part is refitted on
    all of train, and only then is test seen.
    """
    train_y, test_y = np.asarray(train_y, np.int32), np.asarray(test_y, np.int32)
    out = {}
    if np.ndim(l2) and len(l2) == 1:
        l2 = float(l2[0])
    if np.ndim(l2):
        grid = tuple(float(w) for w in l2)
        perm = np.random.default_rng(seed).permutation(len(train_y))
        n_hold = max(1, int(round(holdout * len(train_y))))
        hold, fit_idx = perm[:n_hold], perm[n_hold:]
        xf, xh = standardize(np.asarray(train_x)[fit_idx], np.asarray(train_x)[hold])
        params, _ = fit(xf, jnp.asarray(train_y[fit_idx]), num_classes, grid, min(select_iter, max_iter), tol)
        held = [_accuracy(xh @ params["w"][i] + params["b"][i], jnp.asarray(train_y[hold]))["top1"]
                for i in range(len(grid))]
        best = max(held)
        # Ties go to the strongest penalty that reaches the best held-out accuracy (the simplest model).
        l2 = max(w for w, h in zip(grid, held) if h == best)
        out["holdout_top1"] = dict(zip((f"{w:g}" for w in grid), held))
        # The refit on all of train starts from the chosen held-out solution (features standardised with
        # slightly different statistics: close, and only a starting point).
        init = jax.tree.map(lambda a: a[grid.index(l2)], params)
    else:
        init = None
    xs, xt = standardize(train_x, test_x)
    params, info = fit(xs, jnp.asarray(train_y), num_classes, (float(l2),), max_iter, tol, init=init)
    acc = _accuracy(xt @ params["w"][0] + params["b"][0], jnp.asarray(test_y))
    info = {k: float(v[0]) for k, v in info.items()}
    return {**acc, "l2": float(l2), "iterations": int(info["iterations"]), "grad_norm": info["grad_norm"],
            # The loop stops early only when its gradient norm is under tol; the norm reported beside it is
            # recomputed in another order and can differ from the loop's in the last float32 digits.
            "converged": bool(info["iterations"] < max_iter or info["grad_norm"] < tol), **out}


def knn(train_x, train_y, test_x, test_y, num_classes: int, ks=(20, 200), temperature: float = 0.07,
        chunk: int = 1024) -> dict:
    """Weighted k-nearest-neighbour classification on cosine similarity (Wu et al. 2018).

    Each of the k nearest training features votes for its label with weight
    exp(similarity / temperature); returns {"k20": {"top1", "top5"}, ...} (%).
    """
    def unit(x):
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    xs, xt = jnp.asarray(unit(train_x)), unit(test_x)
    ys = jnp.asarray(train_y, jnp.int32)
    kmax = min(max(ks), len(train_y))

    @jax.jit
    def votes(q):
        sims, idx = jax.lax.top_k(q @ xs.T, kmax)
        onehot = jax.nn.one_hot(ys[idx], num_classes) * jnp.exp(sims / temperature)[..., None]
        return [jnp.sum(onehot[:, :min(k, kmax)], axis=1) for k in ks]

    scores = [[] for _ in ks]
    for start in range(0, len(xt), chunk):
        q = xt[start:start + chunk]
        real = len(q)
        if real < chunk:
            q = np.concatenate([q, np.zeros((chunk - real, q.shape[1]), np.float32)])
        for s, v in zip(scores, votes(jnp.asarray(q))):
            s.append(np.asarray(v)[:real])
    yt = jnp.asarray(test_y, jnp.int32)
    return {f"k{k}": _accuracy(jnp.asarray(np.concatenate(s)), yt) for k, s in zip(ks, scores)}


def label_subset(labels, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced `fraction` of the labelled examples (at least one per class)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, int(round(fraction * 1e6))])
    idx = []
    for c in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == c)
        idx.append(rng.choice(members, max(1, int(round(fraction * len(members)))), replace=False))
    return np.sort(np.concatenate(idx))


def evaluate(train_x, train_y, test_x, test_y, num_classes: int, l2=L2_GRID,
             fractions=(0.01, 0.1), ks=(20, 200), seed: int = 0) -> dict:
    """The probe suite of `--mode=probe`: linear (L2 chosen on held-out train), kNN, few-label."""
    out = {"linear": linear_probe(train_x, train_y, test_x, test_y, num_classes, l2=l2, seed=seed),
           "knn": knn(train_x, train_y, test_x, test_y, num_classes, ks=ks)}
    for f in fractions:
        idx = label_subset(train_y, f, seed)
        r = linear_probe(np.asarray(train_x)[idx], np.asarray(train_y)[idx], test_x, test_y, num_classes,
                         l2=l2, seed=seed)
        out[f"linear_{f * 100:g}pct"] = {**r, "train_examples": int(len(idx))}
    return out


def format_report(r: dict) -> str:
    lines = [f"  {'linear':<24} top-1 {r['linear']['top1']:6.2f}%  top-5 {r['linear']['top5']:6.2f}%"
             f"   (l2 {r['linear']['l2']:g}, chosen on held-out train)"]
    for k, v in r["knn"].items():
        lines.append(f"  {'kNN k=' + k[1:]:<24} top-1 {v['top1']:6.2f}%  top-5 {v['top5']:6.2f}%")
    for k, v in r.items():
        if k.startswith("linear_"):
            name = f"linear, {k[7:-3]}% labels"
            lines.append(f"  {name:<24} top-1 {v['top1']:6.2f}%  top-5 {v['top5']:6.2f}%"
                         f"   ({v['train_examples']} examples, l2 {v['l2']:g})")
    return "\n".join(lines)


def probe_workdir(workdir: str, step: int | None = None, seed: int = 0) -> dict:
    """The probe suite on the checkpoint of `workdir` (newest, or `step`); writes probe_step<S>.json."""
    import json

    import jax

    from duality import data, fileio, pretrained

    enc = pretrained.load(workdir, step)
    cfg = enc.config
    d = data.build(cfg.data, cfg.data.global_batch, cfg.seed)
    train, test = d.train_arrays, d.test_arrays
    keep = train["label"] >= 0
    xs, xt = enc.encode(train["image"][keep])["h"], enc.encode(test["image"])["h"]
    r = evaluate(xs, train["label"][keep], xt, test["label"], cfg.data.num_classes, seed=seed)
    r = {"step": int(enc.step), "data": cfg.data.name, "train_examples": int(keep.sum()),
         "test_examples": int(len(test["label"])), "feature_dim": int(xs.shape[1]), **r}
    if jax.process_index() == 0:
        fileio.write_text(fileio.join(workdir, f"probe_step{enc.step}.json"), json.dumps(r, indent=2))
    return r
