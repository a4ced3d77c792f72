"""Projector and predictor MLPs from spec strings.

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
import jax.numpy as jnp

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
