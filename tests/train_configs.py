"""Tiny versions of every method's config: the same code paths in seconds (configs/base.tiny)."""
import importlib

from configs import base
from duality import methods


def tiny(method: str, steps: int = 2):
    return base.tiny(importlib.import_module(f"configs.{method}").get_config("fashion_mnist"), steps=steps)


METHODS = methods.names()
