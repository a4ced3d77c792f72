"""Flax (linen) encoders and heads.

`build(config.model)` returns the SSLModel for a config; `encoders` maps the
encoder names used in configs to their classes.
"""
from duality.models.resnet import ResNet, resnet18, resnet34, resnet50
from duality.models.small import SmallConvNet
from duality.models.heads import MLP, NormalizedLinear, Prototypes, parse_spec
from duality.models.ssl_model import SSLModel, build

__all__ = ["ResNet", "resnet18", "resnet34", "resnet50", "SmallConvNet", "MLP", "NormalizedLinear", "Prototypes",
           "parse_spec", "SSLModel", "build"]
