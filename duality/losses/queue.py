"""A FIFO queue of past embeddings (MoCo's negatives, SwAV's extra codes)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from duality.losses import collectives as cl
from duality.losses import normalization, validation


def init_queue(rng, size: int, dim: int):
    """A queue of `size` random unit vectors, [size, dim] float32 (MoCo's start)."""
    return normalization.normalize_embeddings(jax.random.normal(rng, (size, dim), jnp.float32))


def enqueue(queue, x, axis_name=None, normalize: bool = True):
    """Push the *global* batch `x` into `queue`, dropping the oldest rows.

    The queue is replicated on every device; `x` holds this device's rows
    and is gathered first, so every device ends with the same queue (newest
    rows first, in device order). No gradient flows into the queue. With
    `normalize`, rows are L2-normalised before they are stored.
    Returns the new queue, same shape.
    """
    x = jax.lax.stop_gradient(validation.matrix("enqueue", "x", x))
    if queue.ndim != 2 or queue.shape[1] != x.shape[1]:
        raise ValueError(f"enqueue: queue {tuple(queue.shape)} and x {tuple(x.shape)} must share the embedding dim")
    x = cl.gather_replicated(x, axis_name)
    if normalize:
        x = normalization.normalize_embeddings(x)
    if x.shape[0] >= queue.shape[0]:
        return x[: queue.shape[0]].astype(queue.dtype)
    return jnp.concatenate([x.astype(queue.dtype), queue[: queue.shape[0] - x.shape[0]]])
