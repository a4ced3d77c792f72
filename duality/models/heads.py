"""Projector and predictor MLPs from spec strings, and the other heads methods put on z.

"8192-8192-8192" is three Linear layers of those widths; every layer but
the last is followed by BatchNorm and ReLU; the last has no bias, no
BatchNorm (the convention of the VICReg and Barlow Twins projectors, and
the paper's X-Y-Z notation, Sec. 4). `out_bn=True` adds a BatchNorm without
scale or bias after the last layer: SimSiam's projector, whose output
statistics are then fixed by normalisation instead of learnt.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from duality.losses.normalization import normalize_embeddings
from duality.models.norm import batch_norm


def parse_spec(spec: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in str(spec).split("-"))
    except ValueError:
        raise ValueError(f"head spec {spec!r} must be widths joined by '-', e.g. '2048-2048-256'") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"head spec {spec!r} must list positive widths")
    return widths


class MLP(nn.Module):
    widths: Sequence[int]
    axis_name: Any = None
    dtype: Any = jnp.float32
    out_bn: bool = False

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = x.astype(self.dtype)
        for i, w in enumerate(self.widths):
            last = i == len(self.widths) - 1
            x = nn.Dense(w, use_bias=not last, dtype=self.dtype, param_dtype=jnp.float32)(x)
            if not last:
                x = nn.relu(batch_norm(train, self.axis_name, self.dtype)(x))
        if self.out_bn:
            x = batch_norm(train, self.axis_name, self.dtype, affine=False)(x)
        return x.astype(jnp.float32)


def _unit_rows(key, shape, dtype=jnp.float32):
    return normalize_embeddings(jax.random.normal(key, shape, dtype))


class Prototypes(nn.Module):
    """SwAV's K prototypes [K, M], initialised on the unit sphere (the method renormalises them each step).

    Called on z like every head, it returns the prototype matrix itself: the
    loss scores z against it, so its gradient flows through the loss.
    """
    count: int

    @nn.compact
    def __call__(self, z, train: bool = True):
        return self.param("w", _unit_rows, (self.count, z.shape[-1]))


class NormalizedLinear(nn.Module):
    """DINO's last layer: the cosine between L2-normalised z and each of `features` weight vectors
    (weight normalisation with the norm fixed to 1), so logits lie in [-1, 1] before the temperature."""
    features: int

    @nn.compact
    def __call__(self, z, train: bool = True):
        w = self.param("w", nn.initializers.truncated_normal(0.02), (self.features, z.shape[-1]))
        return normalize_embeddings(z) @ normalize_embeddings(w).T
