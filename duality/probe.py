"""Linear probing of frozen features.

Features are standardised with the training split's statistics, then a
softmax regression is trained with Adam on minibatches (one compiled
`lax.scan` over all epochs) and evaluated on the test split.
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


def linear_probe(train_x, train_y, test_x, test_y, num_classes: int, epochs: int = 30, batch: int = 1024,
                 lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0) -> dict:
    """Top-1 and top-5 (%) of a linear classifier on frozen features."""
    train_x = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
    test_x = np.asarray(test_x, np.float32).reshape(len(test_x), -1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xs, xt = jnp.asarray((train_x - mean) / std), jnp.asarray((test_x - mean) / std)
    ys, yt = jnp.asarray(train_y, jnp.int32), jnp.asarray(test_y, jnp.int32)
    n, d = xs.shape
    batch = min(batch, n)
    steps_per_epoch = n // batch
    tx = optax.adamw(optax.cosine_decay_schedule(lr, epochs * steps_per_epoch), weight_decay=weight_decay)
    params = {"w": jnp.zeros((d, num_classes)), "b": jnp.zeros((num_classes,))}

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(x @ p["w"] + p["b"], y).mean()

    @jax.jit
    def fit(params, key):
        def epoch(carry, k):
            params, opt = carry
            perm = jax.random.permutation(k, n)[: steps_per_epoch * batch].reshape(steps_per_epoch, batch)

            def step(carry, idx):
                params, opt = carry
                g = jax.grad(loss_fn)(params, xs[idx], ys[idx])
                upd, opt = tx.update(g, opt, params)
                return (optax.apply_updates(params, upd), opt), None

            return jax.lax.scan(step, (params, opt), perm)[0], None

        (params, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), jax.random.split(key, epochs))
        return params

    params = fit(params, jax.random.PRNGKey(seed))
    logits = xt @ params["w"] + params["b"]
    top5 = jnp.argsort(-logits, axis=1)[:, :5]
    return {"top1": float(jnp.mean(jnp.argmax(logits, 1) == yt) * 100),
            "top5": float(jnp.mean(jnp.any(top5 == yt[:, None], axis=1)) * 100)}
