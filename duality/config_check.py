"""Every field of a run's config checked before anything is written.

A bad value should cost nothing: not a compile, not a file in the workdir,
not the first step of a queued pod job. `check(config)` walks every field
of the layout configs/base.py defines and raises `ValueError` naming the
field, the value, the valid range and a fix; the CLI turns that into exit
code 2. The method's own block is checked by the method (duality/methods)
and the loss's hyperparameters by tracing the loss once on its registered
example inputs at the run's global batch, so a loss's own argument checks
(a temperature > 0, a W-MSE sub-batch that divides the batch) fire here
rather than at step 1.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

__all__ = ["check"]


class _Bad(Exception):
    """A value outside its range; the text says what the range is."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_finite_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


# Each rule is a callable that raises _Bad with the valid range; its fields say what the range is.
@dataclasses.dataclass(frozen=True)
class Integer:
    lo: int
    hi: int | None = None

    def __call__(self, v):
        if not _is_int(v) or v < self.lo or (self.hi is not None and v > self.hi):
            raise _Bad(f"an integer >= {self.lo}" + (f" and <= {self.hi}" if self.hi is not None else ""))


@dataclasses.dataclass(frozen=True)
class Real:
    """A finite number in [lo, hi], or (lo, hi] with lo_open."""
    lo: float
    hi: float = math.inf
    lo_open: bool = False

    def __call__(self, v):
        if not (_is_finite_real(v) and (v > self.lo if self.lo_open else v >= self.lo) and v <= self.hi):
            raise _Bad(f"a finite number {'>' if self.lo_open else '>='} {self.lo:g}"
                       + (f" and <= {self.hi:g}" if self.hi != math.inf else ""))


@dataclasses.dataclass(frozen=True)
class Choice:
    options: tuple

    def __call__(self, v):
        if isinstance(v, bool) or v not in self.options:
            raise _Bad(f"one of {', '.join(map(repr, self.options))}")


@dataclasses.dataclass(frozen=True)
class Boolean:
    def __call__(self, v):
        if not isinstance(v, bool):
            raise _Bad("True or False")


@dataclasses.dataclass(frozen=True)
class Interval:
    """Two numbers a <= b within [lo, hi], the lower end open when lo_open."""
    lo: float
    hi: float
    lo_open: bool = True

    def __call__(self, v):
        text = f"a pair (a, b) with {self.lo:g} {'<' if self.lo_open else '<='} a <= b <= {self.hi:g}"
        if not isinstance(v, (tuple, list)) or len(v) != 2 or not all(_is_finite_real(x) for x in v):
            raise _Bad(text)
        a, b = v
        if not ((a > self.lo if self.lo_open else a >= self.lo) and a <= b <= self.hi):
            raise _Bad(text)


@dataclasses.dataclass(frozen=True)
class Widths:
    def __call__(self, v):
        parts = v.split("-") if isinstance(v, str) else None
        if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise _Bad("positive widths joined by '-', e.g. '1024-1024-256'")


@dataclasses.dataclass(frozen=True)
class IntTuple:
    def __call__(self, v):
        if not isinstance(v, (tuple, list)) or not v or not all(_is_int(x) and x >= 1 for x in v):
            raise _Bad("a non-empty tuple of integers >= 1, e.g. (32, 64, 128, 256)")


@dataclasses.dataclass(frozen=True)
class RealTuple:
    positive: bool  # > 0, else >= 0

    def __call__(self, v):
        ok = isinstance(v, (tuple, list)) and v and all(
            _is_finite_real(x) and (x > 0 if self.positive else x >= 0) for x in v)
        if not ok:
            raise _Bad(f"a non-empty tuple of finite numbers {'> 0' if self.positive else '>= 0'}")


PROBABILITY = Real(0.0, 1.0)
# Field -> rule; fields a config does not have are skipped (older or trimmed configs).
RULES = {
    "seed": Integer(0, 2**31 - 1),
    "data.global_batch": Integer(1),
    "data.image_size": Integer(1),
    "data.channels": Choice((1, 3)),
    "data.num_classes": Integer(2),
    "data.train_subset": Integer(0),
    "data.probe_subset": Integer(0),
    "data.shuffle_buffer": Integer(1),
    "data.local_views": Integer(0),
    "data.mean": RealTuple(positive=False),
    "data.std": RealTuple(positive=True),
    "model.widths": IntTuple(),
    "model.stem": Choice(("cifar", "imagenet")),
    "model.projector": Widths(),
    "model.projector_out_bn": Boolean(),
    "model.zero_init_residual": Boolean(),
    "model.dtype": Choice(("float32", "bfloat16")),
    "model.conv_backward": Choice(("auto", "xla", "dot", "mixed", "onednn")),  # models/conv.py BACKWARDS
    "model.norm_impl": Choice(("auto", "xla", "onednn")),  # models/norm.py IMPLS
    "optim.name": Choice(("lars", "sgd", "adamw")),
    "optim.base_lr": Real(0.0, lo_open=True),
    "optim.weight_decay": Real(0.0),
    "optim.momentum": Real(0.0, 1.0),
    "optim.trust_coefficient": Real(0.0, lo_open=True),
    "optim.clip_lr": Boolean(),
    "optim.schedule": Choice(("cosine", "constant")),
    "optim.warmup_steps": Integer(0),
    "optim.warmup_epochs": Integer(0),
    "optim.final_lr_ratio": Real(0.0, 1.0),
    "optim.clip_norm": Real(0.0),
    "probe.lr": Real(0.0, lo_open=True),
    "train.epochs": Integer(0),
    "train.steps": Integer(0),
    "train.log_every": Integer(1),
    "train.checkpoint_every": Integer(0),
    "train.keep_checkpoints": Integer(1),
    "train.nonfinite": Choice(("stop", "skip")),
    "train.max_skipped": Integer(0),
    "eval.linear_probe": Boolean(),
    "eval.baselines": Boolean(),
}
VIEW_RULES = {
    "size": Integer(1),
    "crop_scale": Interval(0.0, 1.0),
    "crop_ratio": Interval(0.0, math.inf),
    "flip_p": PROBABILITY, "jitter_p": PROBABILITY, "gray_p": PROBABILITY, "blur_p": PROBABILITY,
    "solarize_p": PROBABILITY,
    "brightness": Real(0.0), "contrast": Real(0.0), "saturation": Real(0.0), "hue": Real(0.0, 0.5),
    "blur_sigma": Interval(0.0, math.inf),
}
EXAMPLES = {"seed": 0, "data.global_batch": 256, "data.image_size": 28, "data.num_classes": 10,
            "data.shuffle_buffer": 10000, "model.widths": "'(32, 64, 128, 256)'", "model.projector": "1024-1024-1024",
            "optim.base_lr": 0.3, "optim.trust_coefficient": 0.02, "optim.momentum": 0.9, "probe.lr": 0.001,
            "train.epochs": 3, "train.log_every": 20, "train.keep_checkpoints": 3}


_MISSING = object()


def _get(cfg, dotted):
    """cfg.<dotted>, or _MISSING when the config has no such field."""
    node = cfg
    for part in dotted.split("."):
        if not hasattr(node, "keys") or part not in node:
            return _MISSING
        node = node[part]
    return node


def _fail(field: str, value, valid: str) -> ValueError:
    fix = f"--config.{field}={EXAMPLES[field]}" if field in EXAMPLES else f"--config.{field}=<{valid}>"
    return ValueError(f"{field}={value!r} is out of range: it must be {valid}; set it, e.g. {fix}")


def check(config) -> None:
    """Raise ValueError for the first field outside its range (see the module docstring)."""
    for field, rule in RULES.items():
        value = _get(config, field)
        if value is _MISSING:
            continue
        try:
            rule(value)
        except _Bad as e:
            raise _fail(field, value, str(e)) from None
    if _get(config, "train.steps") is not _MISSING and not config.train.steps and not config.train.epochs:
        raise ValueError("train.steps=0 and train.epochs=0: the run would not train; set --config.train.epochs=3 "
                         "(or train.steps to a number of steps)")
    channels = _get(config, "data.channels")
    for field in ("data.mean", "data.std"):
        value = _get(config, field)
        if value is not _MISSING and channels is not _MISSING and len(value) != channels:
            raise ValueError(f"{field}={tuple(value)!r} has {len(value)} entries for data.channels={channels}: "
                             f"give one per channel")
    views = _get(config, "data.views")
    views = [] if views is _MISSING else list(views)
    named = [(f"data.views[{i}]", v) for i, v in enumerate(views)]
    if _get(config, "data.local_views") not in (_MISSING, 0):
        named.append(("data.local_view", config.data.local_view))
    for where, view in named:
        for key, rule in VIEW_RULES.items():
            if key in view:
                try:
                    rule(view[key])
                except _Bad as e:
                    raise ValueError(f"{where}.{key}={view[key]!r} is out of range: it must be {e}") from None
    if _get(config, "method.name") is not _MISSING:
        _check_method(config)


def _check_method(config) -> None:
    """The method's block (its own check) and its loss's hyperparameters (the loss traced once on its example)."""
    import jax
    import jax.numpy as jnp

    from duality import losses, methods

    m = methods.get(config.method.name)
    n_local = config.data.get("local_views", 0)
    m.check(config.method, global_batch=config.data.global_batch, local_views=n_local)
    fn = m.loss_fn
    ex = losses.example(m.loss_name or m.name, config.data.global_batch, 4)
    kw = {**ex.kwargs(), **dict(config.method.loss)}
    try:
        jax.eval_shape(lambda: fn(jnp.asarray(ex.z1, jnp.float32), jnp.asarray(ex.z2, jnp.float32), **kw))
    except (ValueError, TypeError) as e:
        raise ValueError(f"method.loss ({dict(config.method.loss)}): {e}; fix the value with "
                         f"--config.method.loss.<name>=<value>") from None
