"""Tiny versions of every method's config: the same code paths in seconds."""
import importlib

from duality import losses


def tiny(method: str, workdir_subset: int = 256, global_batch: int = 16, steps: int = 2):
    cfg = importlib.import_module(f"configs.{method}").get_config("fashion_mnist")
    cfg.data.train_subset = workdir_subset
    cfg.data.global_batch = global_batch
    cfg.model.widths = (8, 16)
    last = cfg.model.projector.split("-")[-1]
    cfg.model.projector = "32-" + str(min(int(last), 16))
    if cfg.model.predictor:
        cfg.model.predictor = "16-" + str(min(int(last), 16))
    if cfg.model.n_prototypes:
        cfg.model.n_prototypes = 10
    if cfg.model.dino_out:
        cfg.model.dino_out = 16
    if cfg.method.queue_size:
        cfg.method.queue_size = 32
    if method == "wmse":
        cfg.method.loss.w_size = 8
    cfg.optim.update(dict(warmup_steps=1, warmup_epochs=0))
    cfg.train.steps = steps
    cfg.train.log_every = 1
    cfg.train.checkpoint_every = 1
    cfg.eval.probe_l2 = (1e-3,)
    return cfg


METHODS = losses.names()
