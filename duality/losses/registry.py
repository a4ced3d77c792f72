"""Name -> loss function, with checked hyperparameter keywords and example inputs.

`get(name)` returns a callable `(z1, z2, axis_name=None, **keywords)` ->
`(loss, aux)`. A misspelt hyperparameter is the most expensive typo in SSL
(it silently trains with the default), so unknown keywords raise a TypeError
that lists the valid ones.

A loss's keywords are of two kinds. *Inputs* are arrays a method computes
each step (BYOL's targets, MoCo's keys and queue, SwAV's prototypes); they are
named in `register(..., inputs=...)`. Everything else is a *hyperparameter*
with its published default (`get(name).hyperparameters`), which is what a
config's `method.loss` block holds and the command line can set.

Each loss also registers, once, how to make plausible example inputs of any
size (`example(name, n, m, seed)`): the loss report, the benchmarks and the
tests all draw from it, so a new loss is testable the moment it is
registered.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Callable

import numpy as np

_REGISTRY: dict[str, Callable] = {}


@dataclasses.dataclass
class Example:
    """Example arguments of one loss call, by role.

    z1, z2: the two [n, m] embeddings (correlated, as after a little training).
    batch:  inputs with a batch axis first, sharded across devices, not differentiated
            (targets, keys, teacher logits: the losses stop their gradient)
    views:  inputs [V, n, m] that carry gradient (multi-crop views)
    rep:    replicated inputs, not differentiated (queues, centres)
    params: replicated inputs that carry gradient (SwAV's prototypes)
    static: Python values (hyperparameters the example needs, e.g. W-MSE's w_size)
    """
    z1: np.ndarray
    z2: np.ndarray
    batch: dict = dataclasses.field(default_factory=dict)
    views: dict = dataclasses.field(default_factory=dict)
    rep: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)
    static: dict = dataclasses.field(default_factory=dict)

    def kwargs(self, **override) -> dict:
        """Every keyword of the call (arrays as float32 numpy), `override` on top."""
        arrays = {k: np.asarray(v, np.float32) for role in (self.batch, self.views, self.rep, self.params)
                  for k, v in role.items()}
        return {**arrays, **self.static, **override}


def correlated_pair(rng: np.random.Generator, n: int, m: int):
    """Two [n, m] embeddings of the same samples: z2 is z1 plus noise of half its scale."""
    z1 = rng.normal(size=(n, m))
    return z1, z1 + 0.5 * rng.normal(size=(n, m))


def pair_only(rng, n, m) -> Example:
    """The example of a loss that needs nothing but the two embeddings."""
    return Example(*correlated_pair(rng, n, m))


def register(name: str, inputs: tuple[str, ...] = (), example: Callable = pair_only):
    """Decorator: register a pairwise loss under `name`.

    inputs: the keyword arguments that are per-step arrays rather than hyperparameters.
    example: (numpy Generator, n, m) -> Example of plausible arguments at batch n, dimension m.
    """

    def wrap(fn):
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        if positional[:2] != ["z1", "z2"] or "axis_name" not in keywords:
            raise TypeError(f"loss {name!r} must have signature (z1, z2, *, axis_name=None, ...)")
        missing = [k for k in inputs if k not in keywords]
        if missing:
            raise TypeError(f"loss {name!r}: inputs {missing} are not keyword arguments of {fn.__name__}")
        hparams = [k for k in keywords if k != "axis_name" and k not in inputs]

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            if len(args) > 2:
                raise TypeError(
                    f"{name}: takes the two embeddings positionally and everything else by keyword "
                    f"(axis_name=..., {', '.join(f'{h}=...' for h in (list(inputs) + hparams)[:3])}); "
                    f"got {len(args)} positional arguments")
            unknown = [k for k in kwargs if k not in keywords and k not in positional]
            if unknown:
                raise TypeError(
                    f"{name}: unknown hyperparameter(s) {', '.join(map(repr, unknown))}; "
                    f"valid keywords: {', '.join(['axis_name', *inputs, *hparams])}")
            return fn(*args, **kwargs)

        defaults = {p.name: p.default for p in params}
        checked.hyperparameters = {k: defaults[k] for k in hparams}
        checked.inputs = tuple(inputs)
        checked.example = example
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


def example(name: str, n: int, m: int, seed: int = 0) -> Example:
    """Plausible arguments for loss `name` at global batch n and dimension m (deterministic in seed)."""
    return get(name).example(np.random.default_rng(seed), n, m)
