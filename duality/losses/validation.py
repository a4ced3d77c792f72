"""Input checks shared by every loss: clear errors at trace time."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from duality.losses import collectives


def as_float32(name: str, arg: str, x):
    """`x` as a float32 array; TypeError for non-numeric input.

    Losses compute in float32 whatever the input dtype (bf16 activations
    included): the covariance and log-sum-exp terms lose too much in 8 bits
    of mantissa.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:  # lists, scalars: let numpy read them
        try:
            dtype = np.asarray(x).dtype
        except Exception as e:
            raise TypeError(f"{name}: `{arg}` must be an array of numbers, got {type(x).__name__}") from e
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{name}: `{arg}` is complex ({dtype}); embeddings must be real")
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"{name}: `{arg}` must be a real-valued array, got dtype {dtype}; cast it to float32")
    return jnp.asarray(x).astype(jnp.float32)


def matrix(name: str, arg: str, x):
    """A rank-2 [batch, dim] float32 array, or a ValueError naming the shape."""
    x = as_float32(name, arg, x)
    if x.ndim != 2:
        raise ValueError(
            f"{name}: `{arg}` must have rank 2 [batch, dim] (rows are samples), got shape "
            f"{tuple(x.shape)}; flatten the feature axes, e.g. z.reshape(z.shape[0], -1)")
    if x.shape[1] < 1:
        raise ValueError(f"{name}: `{arg}` has no embedding dimensions (shape {tuple(x.shape)})")
    return x


def pair(name: str, z1, z2, axis_name=None, min_batch: int = 2, a1: str = "z1", a2: str = "z2"):
    """Check a pair of view embeddings; return them as float32.

    `min_batch` is on the *global* batch: batch statistics and negatives are
    taken over all devices, so 1 row per device is fine on 8 devices.
    """
    z1 = matrix(name, a1, z1)
    z2 = matrix(name, a2, z2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"{name}: `{a1}` and `{a2}` must have the same shape, got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}; row i of each must embed two views of sample i")
    batch(name, z1, axis_name, min_batch)
    return z1, z2


def batch(name: str, z, axis_name, min_batch: int):
    n = collectives.global_rows(z, axis_name)
    if n < min_batch:
        where = "" if axis_name is None else f" ({z.shape[0]} per device over axis {axis_name!r})"
        raise ValueError(
            f"{name}: needs a global batch of at least {min_batch} samples, got {n}{where}; "
            f"increase the batch size")
    return n


def same_shape(name: str, arg: str, x, like, like_arg: str):
    x = as_float32(name, arg, x)
    if x.shape != like.shape:
        raise ValueError(
            f"{name}: `{arg}` must have the shape of `{like_arg}` {tuple(like.shape)}, got {tuple(x.shape)}")
    return x


def choice(name: str, arg: str, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}: {arg}={value!r} is not one of {sorted(allowed)}")
    return value


def positive(name: str, arg: str, value):
    """Reject non-positive Python numbers (traced values pass through)."""
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"{name}: {arg} must be > 0, got {value}")
    return value


def non_negative(name: str, arg: str, value):
    """Reject negative (or NaN) Python numbers: a coefficient or a shrinkage (traced values pass through)."""
    if isinstance(value, (int, float)) and not value >= 0:
        raise ValueError(f"{name}: {arg} must be >= 0, got {value}")
    return value


def count(name: str, arg: str, value, low: int = 1):
    """An integer >= low (iterations, group sizes)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: {arg} must be an integer >= {low}, got {value!r}")
    return value


def all_views(name, z1, z2, extra_views):
    """[z1, z2, *extra_views] as float32, checked to share [n, dim]."""
    views = [z1, z2]
    if extra_views is not None:
        extra = as_float32(name, "extra_views", extra_views)
        if extra.ndim != 3 or extra.shape[1:] != z1.shape:
            raise ValueError(f"{name}: extra_views must be [V, {z1.shape[0]}, {z1.shape[1]}], got {tuple(extra.shape)}")
        views += list(extra)
    return views
