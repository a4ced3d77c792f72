"""One test case per registered loss: inputs, their roles, and the reference.

Roles of keyword inputs:
  batch:  arrays with a batch axis (sharded across devices), not differentiated
          here (targets, keys, teacher logits: the losses stop their gradient)
  views:  arrays with a batch axis at position 1 that carry gradient (multi-crop views)
  rep:    replicated arrays, not differentiated (queues, centres)
  params: replicated arrays that carry gradient (SwAV's prototypes)
  static: Python hyperparameters
"""
import dataclasses
import functools
from typing import Callable

import numpy as np

from duality import losses
from tests import reference as R


@dataclasses.dataclass
class Case:
    name: str
    z1: np.ndarray
    z2: np.ndarray
    ref: Callable
    batch: dict = dataclasses.field(default_factory=dict)
    views: dict = dataclasses.field(default_factory=dict)
    rep: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)
    static: dict = dataclasses.field(default_factory=dict)

    def kwargs(self, **override):
        kw = {**self.batch, **self.views, **self.rep, **self.params, **self.static}
        kw.update(override)
        return kw

    def ref_value(self, z1, z2, **diff):
        """Reference (loss, aux) with differentiable inputs `diff` overriding the case's."""
        kw = self.kwargs(**diff)
        if self.name == "swav":  # codes are stop-gradient: take them from the unperturbed inputs
            kw["code_inputs"] = (self.z1, self.z2, self.params["prototypes"], self.rep.get("queue"))
        return self.ref(z1, z2, **kw)


SIMCLR_FAMILY = {
    "simclr": ("identity", True), "dcl": ("identity", False),
    "simclr_sq": ("sq", True), "simclr_abs": ("abs", True),
    "dcl_sq": ("sq", False), "dcl_abs": ("abs", False),
}


# The float64 reference of loss <name> is tests/reference.py's function <name>, except for these.
REFERENCES = {name: functools.partial(R.nt_xent, negatives=neg, positive_in_denominator=pos)
              for name, (neg, pos) in SIMCLR_FAMILY.items()}


def _ref(name):
    fn = REFERENCES.get(name) or getattr(R, name)
    if name in SIMCLR_FAMILY:
        return lambda a, b, temperature=0.1, variant="classical": fn(a, b, temperature, variant)
    return lambda a, b, route=None, **kw: fn(a, b, **kw)  # `route` changes how, not what


def make(name: str, n: int, m: int, seed: int = 0, **static) -> Case:
    """The loss's registered example inputs (duality.losses.example) with its float64 reference."""
    ex = losses.example(name, n, m, seed)
    return Case(name, ex.z1, ex.z2, _ref(name), batch=ex.batch, views=ex.views, rep=ex.rep, params=ex.params,
                static={**ex.static, **static})
