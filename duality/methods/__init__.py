"""Methods: name -> the object that turns a loss into a training recipe.

    from duality import methods
    m = methods.get("byol")          # its heads, state, loss inputs and update hooks (base.Method)
    methods.names()                  # every registered method
    methods.build_model(config)      # config.model's encoder and projector + the method's heads

Each method lives in its own file here and registers itself; the trainer
only calls its hooks (see base.py for the order). Losses keep their own
registry (duality.losses): a loss may exist without being a method, and a
method names the loss it trains with.
"""
from __future__ import annotations

from duality import models
from duality.methods.base import Forward, Method, ema_momentum

_REGISTRY: dict[str, Method] = {}


def register(name: str):
    """Class decorator (or call on a Method subclass): register an instance under `name`."""

    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} registered twice")
        method = cls()
        method.name = name
        _REGISTRY[name] = method
        return cls

    return wrap


def get(name: str) -> Method:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"method.name={name!r} is not a registered method; choose one of {', '.join(names())}") \
            from None


def names() -> list[str]:
    return list(_REGISTRY)


def embed_dim(config) -> int:
    """M, the projector's output width."""
    return models.parse_spec(config.model.projector)[-1]


def build_model(config, axis_name=None):
    """The SSLModel of a full config: config.model plus the heads of config.method."""
    import jax.numpy as jnp

    method = get(config.method.name)
    dtype = {"bfloat16": jnp.bfloat16}.get(config.model.get("dtype", "float32"), jnp.float32)
    heads = method.heads(config.method, embed_dim(config), axis_name=axis_name, dtype=dtype)
    return models.build(config.model, axis_name=axis_name, heads=heads)


# Where the layout before the method blocks (issue 12) kept a method's settings in config.model.
_MOVED_FROM_MODEL = {"predictor": "predictor", "n_prototypes": "n_prototypes", "dino_out": "out_dim"}


def upgrade(config: dict) -> dict:
    """A stored config (config.json, a study's cell.json) in the current layout; already current ones unchanged.

    Before method blocks, every config carried every method's fields in
    `method` (ema_base, queue_size, ... used or not), the heads' sizes in
    `model` (predictor, n_prototypes, dino_out) and only the loss
    hyperparameters it set in `method.loss`. The run used the loss's
    defaults for the others, so they are filled in; fields the method never
    read are dropped. Comparing an old run's config with a new one (resuming,
    sharing a study run) then compares what the runs did.
    """
    import copy

    if not isinstance(config, dict) or not isinstance(config.get("method"), dict) or "name" not in config["method"]:
        return config  # not a run's config (or a fragment without a method): nothing to upgrade
    config = copy.deepcopy(config)
    old_model, old = config.get("model", {}), config["method"]
    method = get(old["name"])
    block = method.config().to_dict()
    block["loss"].update(old.get("loss") or {})
    for k in method.fields:
        if k in old:
            block[k] = old[k]
    for model_key, field in _MOVED_FROM_MODEL.items():
        value = old_model.pop(model_key, None) if isinstance(old_model, dict) else None
        if field in method.fields and value not in (None, "", 0):
            block[field] = value
    config["method"] = block
    return config


def _import_all() -> None:
    """Import every method module, so each registers itself: the first ones in the order their tables have
    always listed them (study cells are numbered in this order), then any other file here, a new method
    included, by name."""
    import importlib
    import pkgutil

    first = ["pairwise", "wmse", "byol", "simsiam", "moco", "dino", "swav"]
    others = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in first and m.name != "base")
    for module in first + others:
        importlib.import_module(f"{__name__}.{module}")


_import_all()

__all__ = ["Forward", "Method", "build_model", "ema_momentum", "embed_dim", "get", "names", "register", "upgrade"]
