"""Probing frozen features, and the online probe trained during pretraining.

Linear probe: features standardised with the training split's statistics, a
softmax regression trained with AdamW on minibatches (one compiled
`lax.scan` over all epochs; the candidate weight decays are trained side by
side with `vmap`, chosen on a held-out part of train, never on test). kNN:
temperature-weighted votes of the nearest training features by cosine
similarity, as in Wu et al. 2018 (InstDisc) and DINO's evaluation, k = 20
and 200, temperature 0.07. Few-label probes: the same linear probe on a
class-balanced 1% / 10% of the training labels.
"""
from __future__ import annotations

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


L2_GRID = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)  # L2 penalties the held-out split chooses from (--mode=probe)


def _standardise(train_x, *others):
    train_x = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    return [jnp.asarray((train_x - mean) / std)] + [
        jnp.asarray((np.asarray(x, np.float32).reshape(len(x), -1) - mean) / std) for x in others]


def _fit(xs, ys, num_classes: int, l2s, weight_decay: float, epochs: int, batch: int, lr: float, seed: int,
         min_steps: int = 300):
    """Softmax regressions, one per L2 penalty, trained together (vmapped) with AdamW + cosine.

    Loss: mean cross-entropy + l2 / 2 * ||W||^2 (the classical regularised
    logistic regression); `weight_decay` is AdamW's decoupled decay on top.
    Returns params with a leading penalty axis. Small training sets get more
    epochs so that every fit takes at least `min_steps` steps.
    """
    n, d = xs.shape
    batch = min(batch, n)
    steps_per_epoch = n // batch
    epochs = max(epochs, -(-min_steps // steps_per_epoch))
    l2s = jnp.asarray(l2s, jnp.float32)
    tx = optax.adamw(optax.cosine_decay_schedule(lr, epochs * steps_per_epoch), weight_decay=weight_decay)
    params = {"w": jnp.zeros((len(l2s), d, num_classes)), "b": jnp.zeros((len(l2s), num_classes))}

    def loss_fn(p, x, y, l2):
        ce = optax.softmax_cross_entropy_with_integer_labels(x @ p["w"] + p["b"], y).mean()
        return ce + 0.5 * l2 * jnp.sum(jnp.square(p["w"]))

    def update(p, o, x, y, l2):
        g = jax.grad(loss_fn)(p, x, y, l2)
        upd, o = tx.update(g, o, p)
        return optax.apply_updates(p, upd), o

    @jax.jit
    def fit(params, key):
        opt = jax.vmap(tx.init)(params)

        def epoch(carry, k):
            perm = jax.random.permutation(k, n)[: steps_per_epoch * batch].reshape(steps_per_epoch, batch)

            def step(carry, idx):
                p, o = carry
                return jax.vmap(update, in_axes=(0, 0, None, None, 0))(p, o, xs[idx], ys[idx], l2s), None

            return jax.lax.scan(step, carry, perm)[0], None

        return jax.lax.scan(epoch, (params, opt), jax.random.split(key, epochs))[0][0]

    return fit(params, jax.random.PRNGKey(seed))


def _accuracy(logits, y) -> dict:
    top5 = jnp.argsort(-logits, axis=1)[:, :5]
    return {"top1": float(jnp.mean(jnp.argmax(logits, 1) == y) * 100),
            "top5": float(jnp.mean(jnp.any(top5 == y[:, None], axis=1)) * 100)}


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int, epochs: int = 30, batch: int = 1024,
                 lr: float = 1e-3, weight_decay: float = 1e-4, l2=0.0, holdout: float = 0.1, seed: int = 0) -> dict:
    """Top-1 and top-5 (%) of a linear classifier on frozen, standardised features.

    weight_decay: AdamW's decoupled decay (the end-of-run probe's setting).
    l2: an L2 penalty, or a sequence of them to choose from: each candidate is
    trained on train minus a random `holdout` fraction, the best on the
    held-out part is retrained on all of train, and only then is test seen.
    """
    train_y, test_y = np.asarray(train_y, np.int32), np.asarray(test_y, np.int32)
    out = {}
    if np.ndim(l2):
        grid = tuple(float(w) for w in l2)
        perm = np.random.default_rng(seed).permutation(len(train_y))
        n_hold = max(1, int(round(holdout * len(train_y))))
        hold, fit_idx = perm[:n_hold], perm[n_hold:]
        xf, xh = _standardise(np.asarray(train_x)[fit_idx], np.asarray(train_x)[hold])
        params = _fit(xf, jnp.asarray(train_y[fit_idx]), num_classes, grid, weight_decay, epochs, batch, lr, seed)
        held = [_accuracy(xh @ params["w"][i] + params["b"][i], jnp.asarray(train_y[hold]))["top1"]
                for i in range(len(grid))]
        l2 = grid[int(np.argmax(held))]  # ties go to the weaker penalty (the grid is ascending)
        out["holdout_top1"] = dict(zip((f"{w:g}" for w in grid), held))
    xs, xt = _standardise(train_x, test_x)
    params = _fit(xs, jnp.asarray(train_y), num_classes, (float(l2),), weight_decay, epochs, batch, lr, seed)
    acc = _accuracy(xt @ params["w"][0] + params["b"][0], jnp.asarray(test_y))
    return {**acc, "l2": float(l2), **out}


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
             fractions=(0.01, 0.1), ks=(20, 200), epochs: int = 30, seed: int = 0) -> dict:
    """The probe suite of `--mode=probe`: linear (L2 chosen on held-out train), kNN, few-label."""
    out = {"linear": linear_probe(train_x, train_y, test_x, test_y, num_classes, epochs=epochs,
                                  weight_decay=0.0, l2=l2, seed=seed),
           "knn": knn(train_x, train_y, test_x, test_y, num_classes, ks=ks)}
    for f in fractions:
        idx = label_subset(train_y, f, seed)
        r = linear_probe(np.asarray(train_x)[idx], np.asarray(train_y)[idx], test_x, test_y, num_classes,
                         epochs=epochs, weight_decay=0.0, l2=l2, seed=seed)
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
    import os

    import jax

    from duality import data, pretrained

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
        with open(os.path.join(workdir, f"probe_step{enc.step}.json"), "w") as f:
            json.dump(r, f, indent=2)
    return r
