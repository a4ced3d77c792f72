"""What a joint-embedding method is, beyond its loss: the hooks the trainer calls.

A method is an object registered under its name (`methods.register`). Its
file says everything that makes it work; the trainer (duality/train.py)
calls the hooks below in this order and never asks which method runs:

  config()      its config block: `name`, `loss` (every hyperparameter of the
                loss it trains with, at the published defaults) and its own
                fields with defaults; `check` rejects unknown fields
  heads()       modules applied to the projector output z beside the
                projector (a predictor, SwAV's prototypes, DINO's head); each
                head's output appears in the model's output dict under its name
  init_state()  what the method carries between steps (an EMA target, a
                queue, a centre): `TrainState.method`, so every checkpoint
  loss_inputs() (a, b, keyword inputs) of the loss from this step's forward pass
  loss()        the registered loss on them (a method may route it)
  grads()       gradient surgery before the optimiser
  after_update() what moves after the optimiser step (renormalisation,
                EMA target, queue, centre); no gradient flows here

A new method is one file in duality/methods/ (docs/adding_a_method.md).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections

from duality import losses


@flax.struct.dataclass
class Forward:
    """One step's forward pass, as loss_inputs and after_update see it.

    outs: the model outputs of the two global views (dicts: h, z and one entry per head)
    target_outs: the EMA target's outputs of the same views (None without a target)
    local_outs: outputs of the multi-crop local views (empty without multi-crop)
    state: the method state before this step; step: the step index (int32 scalar)
    rng: a key shared by every device (e.g. W-MSE's sub-batch split)
    """
    outs: list
    target_outs: Any
    local_outs: list
    state: dict
    step: jax.Array
    rng: jax.Array


class Method:
    """A method whose loss trains the projector outputs of the two views and nothing else.

    Subclasses override what they need. Class attributes:
      loss_name:  the registered loss it trains with (default: the method's own name)
      fields:     its own config fields and their defaults, beside `loss`
      multicrop:  whether it accepts local views (data.local_views > 0)
      ema_target: whether it keeps an EMA copy of the network (then `ema_base` must be a field)
      small:      settings for the test suite's tiny runs (configs/base.tiny), e.g. a short queue
    """
    name: str = ""
    loss_name: str = ""
    fields: dict = {}
    small: dict = {}
    multicrop: bool = False
    ema_target: bool = False

    # ------------------------------------------------------------------ config
    @property
    def loss_fn(self) -> Callable:
        return losses.get(self.loss_name or self.name)

    def config(self, loss: dict | None = None, **fields) -> ml_collections.ConfigDict:
        """This method's config block: its loss's hyperparameters and its fields, overrides on top."""
        c = ml_collections.ConfigDict()
        c.name = self.name
        c.loss = _block("method.loss", dict(self.loss_fn.hyperparameters), loss or {}, self.name)
        for k, v in _block("method", dict(self.fields), fields, self.name).items():
            setattr(c, k, v)
        return c

    def check(self, cfg, *, global_batch: int, local_views: int) -> None:
        """Raise ValueError naming the field, its value and the fix (unknown fields included)."""
        valid = {"name", "loss", *self.fields}
        unknown = sorted(set(cfg.keys()) - valid)
        hparams = ", ".join(self.loss_fn.hyperparameters) or "none"
        if unknown:
            raise ValueError(f"method.{unknown[0]} is not a setting of {self.name}; its settings are "
                             f"{', '.join(sorted(valid))} (method.loss: {hparams})")
        bad = sorted(set(cfg.get("loss", {}).keys()) - set(self.loss_fn.hyperparameters))
        if bad:
            raise ValueError(f"method.loss.{bad[0]} is not a hyperparameter of the {self.loss_name or self.name} loss; "
                             f"valid: {hparams}")
        if local_views and not self.multicrop:
            raise ValueError(f"data.local_views={local_views}: multi-crop is not defined for {self.name}; "
                             f"set data.local_views=0 (methods with multi-crop: swav, dino)")
        if self.ema_target:  # a momentum outside [0, 1] makes the target diverge (it trained to NaN at step 113)
            self.within(cfg, "ema_base", 0.0, 1.0, f"--config.method.ema_base={self.fields['ema_base']}")

    def at_least(self, cfg, field: str, low: int, example) -> None:
        """A count field (a queue, a head's width) below `low`: ValueError naming the field, the value, a fix."""
        if cfg[field] < low:
            raise ValueError(f"method.{field}={cfg[field]}: {self.name} needs {field} >= {low}, e.g. {example}")

    def within(self, cfg, field: str, low: float, high: float, example) -> None:
        """A rate or momentum outside [low, high] (or not a finite number): ValueError naming field, value, fix."""
        v = cfg[field]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
            raise ValueError(f"method.{field}={v!r} is out of range: {self.name} needs a number in "
                             f"[{low:g}, {high:g}]; set it, e.g. {example}")

    # ------------------------------------------------------------------- model
    def heads(self, cfg, embed_dim: int, *, axis_name=None, dtype=jnp.float32) -> dict:
        """name -> flax module applied to z [B, M] (train flag as second argument)."""
        return {}

    # ------------------------------------------------------------------- state
    def init_state(self, cfg, params, batch_stats, rng, embed_dim: int) -> dict:
        if not self.ema_target:
            return {}
        # A copy, not the online arrays: the train step donates its state, and
        # one buffer donated twice crashes XLA.
        return {"target": jax.tree.map(jnp.copy, {"params": params, "batch_stats": batch_stats})}

    # -------------------------------------------------------------------- step
    def loss_inputs(self, cfg, fwd: Forward) -> tuple[jax.Array, jax.Array, dict]:
        """(a, b, keyword inputs) of the loss; hyperparameters from cfg.loss are added by `loss`."""
        return fwd.outs[0]["z"], fwd.outs[1]["z"], {}

    def loss(self, cfg, a, b, inputs: dict, fwd: Forward, axis_name):
        return self.loss_fn(a, b, axis_name=axis_name, **inputs, **dict(cfg.loss))

    def grads(self, cfg, grads: dict, step) -> dict:
        return grads

    def after_update(self, cfg, params: dict, batch_stats, fwd: Forward, progress, axis_name) -> tuple[dict, dict]:
        """(params, new method state) after the optimiser step. `progress`: (step, total steps)."""
        state = dict(fwd.state)
        if self.ema_target:
            tau = ema_momentum(cfg.ema_base, *progress)
            state["target"] = jax.tree.map(lambda t, o: tau * t + (1.0 - tau) * o, state["target"],
                                           {"params": params, "batch_stats": batch_stats})
        return params, state


def ema_momentum(base: float, step, total_steps: int):
    """BYOL's cosine schedule: tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2, rising to 1."""
    return 1.0 - (1.0 - base) * (jnp.cos(math.pi * step / max(total_steps, 1)) + 1.0) / 2.0


def _block(where: str, defaults: dict, overrides: dict, method: str) -> dict:
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{where}.{unknown[0]} is not a setting of {method}; valid: {', '.join(defaults) or 'none'}")
    return {**defaults, **overrides}
