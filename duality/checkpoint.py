"""Orbax checkpoints of the whole train state, with resume from the workdir.

What is saved: parameters, BatchNorm statistics, optimiser state, method
state (EMA target, queue, centre), online-probe state, the RNG key and the
step. The data position is the step (data/pipeline.py), so restoring the
state restores everything. Saves are asynchronous, keep the last
`keep` checkpoints, and happen every `every` steps, at the end, and when the
run is interrupted (SIGTERM / SIGINT). A state whose loss is not finite is
never saved: the last good checkpoint stays the newest.

The config is written to `workdir/config.json`. Resuming with a config that
changes what the checkpoint means (model, method, data, batch) is an error
that names the fields; other fields (steps, logging, learning rate) may change.
"""
from __future__ import annotations

import json
import os
import signal

import jax
import orbax.checkpoint as ocp

# Fields whose change makes an existing checkpoint mean something else, or
# would make the resumed run differ from an uninterrupted one (the data order
# depends on the seed, the subset and the batch; the optimiser state's
# structure on optim.name and clipping). data.data_dir may move between machines.
IDENTITY_FIELDS = ("seed", "model", "method", "data.name", "data.image_size", "data.channels", "data.num_classes",
                   "data.global_batch", "data.train_subset", "data.views", "data.local_views", "data.local_view",
                   "data.mean", "data.std", "data.shuffle_buffer", "optim.name", "optim.clip_norm")
_MISSING = object()


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg.get(part, _MISSING) if isinstance(cfg, dict) else _MISSING
    return cfg


def check_config(workdir: str, cfg_dict: dict, resuming: bool) -> None:
    """Write workdir/config.json; when resuming, first compare with the one there."""
    path = os.path.join(workdir, "config.json")
    cfg_dict = json.loads(json.dumps(cfg_dict))  # as stored: tuples become lists
    if resuming and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        # A field the stored config lacks was added to the code after that run started: not a change.
        changed = [k for k in IDENTITY_FIELDS if _get(old, k) is not _MISSING and _get(old, k) != _get(cfg_dict, k)]
        if changed:
            details = "; ".join(f"{k}: {_get(old, k)!r} -> {_get(cfg_dict, k)!r}" for k in changed)
            raise ValueError(
                f"{workdir} holds a run with a different {', '.join(changed)} ({details}). Resuming would load "
                f"a checkpoint that does not match; use a new --workdir, or restore the original values.")
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg_dict, f, indent=2, sort_keys=True)
        os.replace(tmp, path)


class Checkpointer:
    def __init__(self, workdir: str, every: int, keep: int):
        self.every = every
        self.manager = ocp.CheckpointManager(
            os.path.abspath(os.path.join(workdir, "checkpoints")),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                                 create=True))
        self.interrupted = None
        self._previous = {}

    def latest_step(self):
        return self.manager.latest_step()

    def restore(self, abstract_state, step=None):
        step = self.manager.latest_step() if step is None else step
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

    def save(self, step: int, state, force: bool = False) -> bool:
        if not force and (self.every <= 0 or step % self.every):
            return False
        if self.manager.latest_step() == step:
            return False
        return self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.wait_until_finished()
        self.manager.close()

    # Interruption: the handler only records the signal; the loop saves at the
    # next step boundary, where the state is consistent.
    def install_signal_handlers(self):
        def handler(signum, frame):
            self.interrupted = signum

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, handler)

    def restore_signal_handlers(self):
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous = {}
