"""ResNet-18/34/50 (He et al. 2016) with an ImageNet or a CIFAR stem.

ImageNet stem: 7x7 stride-2 convolution and a 3x3 stride-2 max-pool. CIFAR
stem (for 32x32 and smaller inputs): one 3x3 stride-1 convolution, no pool;
without it small images are reduced to 1x1 before the last stage (the
reason lightly#1419's SimCLR stalled on CIFAR-10). `zero_init_residual`
starts each block's last BatchNorm scale at zero, so every block is the
identity at initialisation (Goyal et al. 2017). The representation is the
global-average-pooled output of the last stage (512 or 2048 dims).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from duality.models.conv import conv
from duality.models.norm import batch_norm


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    zero_init_residual: bool = False
    axis_name: Any = None
    dtype: Any = jnp.float32
    conv_backward: str = "auto"  # models/conv.py
    norm_impl: str = "auto"  # models/norm.py

    @nn.compact
    def __call__(self, x, train: bool):
        cv = functools.partial(conv, dtype=self.dtype, backward=self.conv_backward)
        y = cv(self.features, (3, 3), (self.stride, self.stride), padding=1)(x)
        y = batch_norm(train, self.axis_name, self.dtype, relu=True, impl=self.norm_impl)(y)
        y = cv(self.features, (3, 3), padding=1)(y)
        y = batch_norm(train, self.axis_name, self.dtype, zero_init=self.zero_init_residual, impl=self.norm_impl)(y)
        if x.shape[-1] != self.features or self.stride != 1:
            x = cv(self.features, (1, 1), (self.stride, self.stride), name="proj")(x)
            x = batch_norm(train, self.axis_name, self.dtype, name="proj_bn", impl=self.norm_impl)(x)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    features: int
    stride: int = 1
    zero_init_residual: bool = False
    axis_name: Any = None
    dtype: Any = jnp.float32
    conv_backward: str = "auto"  # models/conv.py
    norm_impl: str = "auto"  # models/norm.py
    expansion: int = 4

    @nn.compact
    def __call__(self, x, train: bool):
        cv = functools.partial(conv, dtype=self.dtype, backward=self.conv_backward)
        out = self.features * self.expansion
        y = cv(self.features, (1, 1))(x)
        y = batch_norm(train, self.axis_name, self.dtype, relu=True, impl=self.norm_impl)(y)
        y = cv(self.features, (3, 3), (self.stride, self.stride), padding=1)(y)
        y = batch_norm(train, self.axis_name, self.dtype, relu=True, impl=self.norm_impl)(y)
        y = cv(out, (1, 1))(y)
        y = batch_norm(train, self.axis_name, self.dtype, zero_init=self.zero_init_residual, impl=self.norm_impl)(y)
        if x.shape[-1] != out or self.stride != 1:
            x = cv(out, (1, 1), (self.stride, self.stride), name="proj")(x)
            x = batch_norm(train, self.axis_name, self.dtype, name="proj_bn", impl=self.norm_impl)(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    stage_sizes: Sequence[int]
    block: str = "basic"  # "basic" (18/34) or "bottleneck" (50)
    stem: str = "imagenet"  # or "cifar"
    width: int = 64
    zero_init_residual: bool = True
    axis_name: Any = None
    dtype: Any = jnp.float32
    conv_backward: str = "auto"  # models/conv.py
    norm_impl: str = "auto"  # models/norm.py

    @nn.compact
    def __call__(self, x, train: bool = True):
        cv = functools.partial(conv, dtype=self.dtype, backward=self.conv_backward)
        x = x.astype(self.dtype)
        if self.stem == "imagenet":
            x = cv(self.width, (7, 7), (2, 2), padding=3, name="stem")(x)
            x = batch_norm(train, self.axis_name, self.dtype, name="stem_bn", relu=True, impl=self.norm_impl)(x)
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        elif self.stem == "cifar":
            x = cv(self.width, (3, 3), padding=1, name="stem")(x)
            x = batch_norm(train, self.axis_name, self.dtype, name="stem_bn", relu=True, impl=self.norm_impl)(x)
        else:
            raise ValueError(f"ResNet: unknown stem {self.stem!r}; use 'imagenet' or 'cifar'")
        block = {"basic": BasicBlock, "bottleneck": Bottleneck}[self.block]
        for i, n in enumerate(self.stage_sizes):
            for j in range(n):
                x = block(self.width * 2 ** i, stride=2 if i > 0 and j == 0 else 1,
                          zero_init_residual=self.zero_init_residual, axis_name=self.axis_name,
                          dtype=self.dtype, conv_backward=self.conv_backward, norm_impl=self.norm_impl)(x, train)
        return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


# Stage sizes and block of each depth (He et al. 2016, Table 1): the one place they are written.
DEPTHS = {"resnet18": ((2, 2, 2, 2), "basic"), "resnet34": ((3, 4, 6, 3), "basic"),
          "resnet50": ((3, 4, 6, 3), "bottleneck")}


def resnet(name: str, **kw) -> ResNet:
    """ResNet-18/34/50 by name ("resnet18", ...); keywords as ResNet's (stem, zero_init_residual, ...)."""
    stages, block = DEPTHS[name]
    return ResNet(stage_sizes=stages, block=block, **kw)


def resnet18(**kw):
    return resnet("resnet18", **kw)


def resnet34(**kw):
    return resnet("resnet34", **kw)


def resnet50(**kw):
    return resnet("resnet50", **kw)
