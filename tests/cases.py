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
from typing import Callable

import numpy as np

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


def make(name: str, n: int, m: int, seed: int = 0, **static) -> Case:
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(n, m))
    z2 = z1 + 0.5 * rng.normal(size=(n, m))  # correlated views, as after training a little
    if name in SIMCLR_FAMILY:
        negatives, pos_in_den = SIMCLR_FAMILY[name]

        def ref(a, b, temperature=0.1, variant="classical"):
            return R.nt_xent(a, b, temperature, variant, negatives, pos_in_den)

        return Case(name, z1, z2, ref, static=static)
    simple = {"spectral": R.spectral, "vicreg": R.vicreg, "vicreg_exp": R.vicreg_exp,
              "vicreg_ctr": R.vicreg_ctr, "barlow_twins": R.barlow_twins, "tcr": R.tcr}
    if name in simple:
        fn = simple[name]

        def ref(a, b, route=None, **kw):  # `route` changes how, not what
            return fn(a, b, **kw)

        return Case(name, z1, z2, ref, static=static)
    if name == "wmse":
        static = {"w_size": n // 2 if n >= 4 else n, **static}
        return Case(name, z1, z2, lambda a, b, w_size, **kw: R.wmse(a, b, w_size, **kw), static=static)
    if name in ("byol", "simsiam"):
        return Case(name, z1, z2, getattr(R, name), static=static,
                    batch=dict(target1=z2 + 0.3 * rng.normal(size=(n, m)),
                               target2=z1 + 0.3 * rng.normal(size=(n, m))))
    if name == "moco":
        return Case(name, z1, z2, R.moco, static=static,
                    batch=dict(key1=z1 + 0.3 * rng.normal(size=(n, m)), key2=z2 + 0.3 * rng.normal(size=(n, m))),
                    rep=dict(queue=rng.normal(size=(3 * n, m))))
    if name == "dino":
        return Case(name, z1, z2, R.dino, static=static,
                    batch=dict(teacher1=rng.normal(size=(n, m)), teacher2=rng.normal(size=(n, m))),
                    views=dict(extra_views=rng.normal(size=(2, n, m))),
                    rep=dict(center=0.1 * rng.normal(size=(m,))))
    if name == "swav":
        return Case(name, z1, z2, R.swav, static=static,
                    views=dict(extra_views=rng.normal(size=(2, n, m))),
                    rep=dict(queue=rng.normal(size=(2 * n, m))),
                    params=dict(prototypes=rng.normal(size=(10, m))))
    raise KeyError(name)
