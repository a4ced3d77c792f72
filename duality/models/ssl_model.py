"""Encoder + projector (+ predictor, + prototypes / DINO head) as one module.

Outputs a dict for a batch of images:
  h: representation (what probes see)      [B, D]
  z: projector output (what losses see)    [B, M]
  p: predictor output (BYOL, SimSiam)      [B, M]       if `predictor`
  logits: DINO head output                 [B, K]       if `dino_out`
and the SwAV prototypes are a parameter "prototypes" [K, M] of this module.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from duality.losses import normalize_embeddings
from duality.models.heads import MLP, parse_spec
from duality.models.resnet import ResNet
from duality.models.small import SmallConvNet

ENCODERS = ("small", "resnet18", "resnet34", "resnet50")


class SSLModel(nn.Module):
    encoder: str = "small"
    widths: tuple = (32, 64, 128, 256)  # small encoder only
    stem: str = "cifar"
    projector: str = "2048-2048-2048"
    projector_out_bn: bool = False  # SimSiam: an affine-free BatchNorm after the projector's last layer
    predictor: str = ""
    n_prototypes: int = 0
    dino_out: int = 0
    zero_init_residual: bool = True
    axis_name: Any = None
    dtype: Any = jnp.float32

    def setup(self):
        kw = dict(axis_name=self.axis_name, dtype=self.dtype)
        if self.encoder == "small":
            self.backbone = SmallConvNet(widths=tuple(self.widths), **kw)
        elif self.encoder in ("resnet18", "resnet34", "resnet50"):
            stages = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}[self.encoder]
            block = "bottleneck" if self.encoder == "resnet50" else "basic"
            self.backbone = ResNet(stages, block, self.stem, zero_init_residual=self.zero_init_residual, **kw)
        else:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {ENCODERS}")
        self.proj = MLP(parse_spec(self.projector), out_bn=self.projector_out_bn, **kw)
        if self.predictor:
            self.pred = MLP(parse_spec(self.predictor), **kw)
        m = parse_spec(self.projector)[-1]
        if self.n_prototypes:
            self.prototypes = self.param("prototypes", nn.initializers.normal(1.0), (self.n_prototypes, m))
        if self.dino_out:
            self.dino_head = self.param("dino_head", nn.initializers.truncated_normal(0.02), (self.dino_out, m))

    def __call__(self, x, train: bool = True):
        h = self.backbone(x, train)
        z = self.proj(h, train)
        out = {"h": h, "z": z}
        if self.predictor:
            out["p"] = self.pred(z, train)
        if self.dino_out:  # weight-normalised last layer on the L2-normalised bottleneck (DINO)
            out["logits"] = normalize_embeddings(z) @ normalize_embeddings(self.dino_head).T
        return out

    def represent(self, x):
        """Frozen-evaluation representation (BatchNorm in inference mode)."""
        return self.backbone(x, False)


def build(cfg, axis_name=None) -> SSLModel:
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}.get(cfg.get("dtype", "float32"))
    if dtype is None:
        raise ValueError(f"model.dtype must be 'float32' or 'bfloat16', got {cfg.dtype!r}")
    return SSLModel(encoder=cfg.encoder, widths=tuple(cfg.get("widths", (32, 64, 128, 256))), stem=cfg.get("stem", "cifar"),
                    projector=cfg.projector, projector_out_bn=bool(cfg.get("projector_out_bn", False)),
                    predictor=cfg.get("predictor", ""), n_prototypes=cfg.get("n_prototypes", 0),
                    dino_out=cfg.get("dino_out", 0), zero_init_residual=cfg.get("zero_init_residual", True),
                    axis_name=axis_name, dtype=dtype)


def param_count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
