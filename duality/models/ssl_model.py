"""Encoder + projector + the method's heads, as one module.

Outputs a dict for a batch of images:
  h: representation (what probes see)      [B, D]
  z: projector output (what losses see)    [B, M]
  <head>: each head's output on z          (a predictor's [B, M'], DINO's logits [B, K], SwAV's prototypes [K, M])
The heads come from the method (duality/methods: `Method.heads`); each is a
submodule named as its output, so its parameters are params[<head>].
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from duality.models.heads import MLP, parse_spec
from duality.models.resnet import DEPTHS, resnet
from duality.models.small import SmallConvNet

ENCODERS = ("small", *DEPTHS)


class SSLModel(nn.Module):
    encoder: str = "small"
    widths: tuple = (32, 64, 128, 256)  # small encoder only
    stem: str = "cifar"
    projector: str = "2048-2048-2048"
    projector_out_bn: bool = False  # SimSiam: an affine-free BatchNorm after the projector's last layer
    heads: tuple = ()  # (name, zero-argument factory of a module applied as module(z, train)), from the method
    zero_init_residual: bool = True
    axis_name: Any = None
    dtype: Any = jnp.float32
    conv_backward: str = "auto"  # how convolutions are differentiated (models/conv.py); same function either way
    norm_impl: str = "auto"  # who computes training-mode BatchNorm (models/norm.py); same function either way

    def setup(self):
        kw = dict(axis_name=self.axis_name, dtype=self.dtype)
        if self.encoder == "small":
            self.backbone = SmallConvNet(widths=tuple(self.widths), conv_backward=self.conv_backward, norm_impl=self.norm_impl, **kw)
        elif self.encoder in DEPTHS:
            self.backbone = resnet(self.encoder, stem=self.stem, zero_init_residual=self.zero_init_residual,
                                   conv_backward=self.conv_backward, norm_impl=self.norm_impl, **kw)
        else:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {ENCODERS}")
        self.proj = MLP(parse_spec(self.projector), out_bn=self.projector_out_bn, **kw)
        for name, make in self.heads:
            setattr(self, name, make())

    def __call__(self, x, train: bool = True):
        h = self.backbone(x, train)
        z = self.proj(h, train)
        out = {"h": h, "z": z}
        for name, _ in self.heads:
            out[name] = getattr(self, name)(z, train)
        return out

    def represent(self, x):
        """Frozen-evaluation representation (BatchNorm in inference mode)."""
        return self.backbone(x, False)


def build(cfg, axis_name=None, heads: dict | None = None) -> SSLModel:
    """The model of config block `cfg` (config.model); `heads`: name -> module factory (Method.heads)."""
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}.get(cfg.get("dtype", "float32"))
    if dtype is None:
        raise ValueError(f"model.dtype must be 'float32' or 'bfloat16', got {cfg.dtype!r}")
    return SSLModel(encoder=cfg.encoder, widths=tuple(cfg.get("widths", (32, 64, 128, 256))), stem=cfg.get("stem", "cifar"),
                    projector=cfg.projector, projector_out_bn=bool(cfg.get("projector_out_bn", False)),
                    heads=tuple((heads or {}).items()), zero_init_residual=cfg.get("zero_init_residual", True),
                    axis_name=axis_name, dtype=dtype, conv_backward=cfg.get("conv_backward", "auto"),
                    norm_impl=cfg.get("norm_impl", "auto"))


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
