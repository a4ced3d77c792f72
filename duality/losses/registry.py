"""Name -> loss function, with checked hyperparameter keywords.

`get(name)` returns a callable `(z1, z2, axis_name=None, **hparams)` ->
`(loss, aux)`. A misspelt hyperparameter is the most expensive typo in SSL
(it silently trains with the default), so unknown keywords raise a TypeError
that lists the valid ones.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable

_REGISTRY: dict[str, Callable] = {}


def register(name: str):
    """Decorator: register a pairwise loss under `name`."""

    def wrap(fn):
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        if positional[:2] != ["z1", "z2"] or "axis_name" not in keywords:
            raise TypeError(f"loss {name!r} must have signature (z1, z2, *, axis_name=None, ...)")
        hparams = [k for k in keywords if k != "axis_name"]

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            if len(args) > 2:
                raise TypeError(
                    f"{name}: takes the two embeddings positionally and everything else by keyword "
                    f"(axis_name=..., {', '.join(f'{h}=...' for h in hparams[:3])}); got {len(args)} positional arguments")
            unknown = [k for k in kwargs if k not in keywords and k not in positional]
            if unknown:
                raise TypeError(
                    f"{name}: unknown hyperparameter(s) {', '.join(map(repr, unknown))}; "
                    f"valid keywords: {', '.join(['axis_name'] + hparams)}")
            return fn(*args, **kwargs)

        checked.hyperparameters = {
            p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name != "axis_name"}
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} registered twice")
        _REGISTRY[name] = checked
        return checked

    return wrap


def get(name: str) -> Callable:
    """The registered loss called `name`."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; registered losses: {', '.join(names())}") from None


def names() -> list[str]:
    """Every registered loss name, in registration order."""
    return list(_REGISTRY)
