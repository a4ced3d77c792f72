"""A small convnet sized for the CPU default (Fashion-MNIST, 28x28).

Four 3x3 conv-BN-ReLU layers (the last three with stride 2), then global
average and global max pooling concatenated: 2 x `widths[-1]` dimensions.
Max pooling keeps where-is-it evidence that averaging washes out on 7x7
maps, which matters for a linear probe on small images.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from duality.models.conv import conv
from duality.models.norm import batch_norm


class SmallConvNet(nn.Module):
    widths: Sequence[int] = (32, 64, 128, 256)
    axis_name: Any = None
    dtype: Any = jnp.float32
    conv_backward: str = "auto"  # models/conv.py: "auto" (per layer, from the platform), "xla", "dot" or "mixed"
    norm_impl: str = "auto"  # models/norm.py: "auto", "xla" or "onednn"

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = x.astype(self.dtype)
        for i, w in enumerate(self.widths):
            s = 1 if i == 0 else 2
            x = conv(w, (3, 3), (s, s), padding=1, dtype=self.dtype, backward=self.conv_backward)(x)
            x = batch_norm(train, self.axis_name, self.dtype, relu=True, impl=self.norm_impl)(x)
        return jnp.concatenate([jnp.mean(x, axis=(1, 2)), jnp.max(x, axis=(1, 2))], axis=-1).astype(jnp.float32)
