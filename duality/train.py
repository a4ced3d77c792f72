"""The trainer: config in, pretrained encoder and its numbers out.

One data-parallel step, `jax.jit` + `jax.shard_map` over a 1-D mesh axis
"batch" (the per-device program pmap would run, in the current API), built
from the method's hooks (duality/methods/base.py) and never from its name:

  views  = augment(key, images)                   on device, per-example keys
  out    = model.apply(params, view)              sync BatchNorm over "batch"; the method's heads included
  a, b, inputs = method.loss_inputs(...)          e.g. predictions and EMA-target projections
  loss   = method.loss(a, b, inputs)              the registered loss, axis_name="batch"
  grads  = method.grads(pmean(d loss / d params)) exact: see losses/collectives.py
  params = optax update; method.after_update      EMA target, queue, centre, renormalisation
  online probe; metrics; non-finite guard

A step whose loss, gradient or new state is not finite is never applied
(the state is kept, `skipped` counts it), so no non-finite state can reach a
checkpoint. The run then stops with an error naming the step and every loss
term (`train.nonfinite="stop"`, the default), or goes on (`"skip"`) until
more than `train.max_skipped` steps were skipped.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from duality import (checkpoint, config_check, data, distributed, fileio, health, lock, losses, methods, optim,
                     probe)
from duality.data import augment as aug
from duality.metrics import Progress, Writer

AXIS = "batch"


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    method: Any
    probe_params: Any
    probe_opt_state: Any
    rng: jax.Array
    skipped: jax.Array


class Trainer:
    """Everything a run needs, built once from the config."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.mesh = jax.make_mesh((jax.device_count(),), (AXIS,))
        self.global_batch = config.data.global_batch
        if self.global_batch % jax.device_count():
            raise ValueError(
                f"data.global_batch={self.global_batch} is not divisible by the {jax.device_count()} devices; "
                f"use a multiple of {jax.device_count()}")
        self.data = data.build(config.data, self.global_batch, config.seed)
        self.total_steps = config.train.get("steps") or config.train.epochs * self.data.train.steps_per_epoch
        self.views = [aug.view_spec(v) for v in config.data.views]
        if len(self.views) != 2:
            raise ValueError(f"data.views must hold the two global views, got {len(self.views)}")
        n_local = config.data.get("local_views", 0)
        self.local_view = aug.view_spec(config.data.local_view) if n_local else None
        self.method = methods.get(config.method.name)
        self.method.check(config.method, global_batch=self.global_batch, local_views=n_local)
        if config.train.log_every < 1:
            raise ValueError(f"train.log_every must be >= 1, got {config.train.log_every}")
        self.model = methods.build_model(config, axis_name=AXIS)
        self.eval_model = methods.build_model(config, axis_name=None)
        size, ch = config.data.image_size, config.data.channels
        modules = jax.eval_shape(lambda: self.eval_model.init(jax.random.PRNGKey(0), jnp.zeros((2, size, size, ch)),
                                                              train=False))["params"].keys()
        optim.check_groups(config.optim.get("groups", {}), modules)
        self.tx, self.schedule = optim.make(config.optim, self.global_batch, self.total_steps,
                                            self.data.train.steps_per_epoch)
        self.probe_tx = optax.adam(config.probe.lr)
        self.mean, self.std = tuple(config.data.mean), tuple(config.data.std)
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P(AXIS))
        self._step = self._make_step()
        self._initial_params = None

    # ------------------------------------------------------------------ state
    def _place(self, tree):
        # Every process computed the same values; each places them on its own
        # devices. (jax.device_put onto a multi-host sharding would all-gather
        # every leaf to compare the processes' copies.)
        return jax.tree.map(lambda x: jax.make_array_from_callback(np.shape(x), self.replicated,
                                                                   lambda idx: np.asarray(x)[idx]),
                            jax.device_get(tree))

    def init_state(self, seed: int) -> TrainState:
        """The initial state, replicated over the mesh."""
        return self._place(self._initial_values(seed))

    def initial_params(self):
        """The parameters at initialisation from the run's seed (health.drift's reference), computed once."""
        if self._initial_params is None:
            self._initial_params = self._place(self._initial_values(self.config.seed).params)
        return self._initial_params

    def _initial_values(self, seed: int) -> TrainState:
        cfg = self.config
        rng = jax.random.PRNGKey(seed)
        # Four keys, as since the first version, so that a seed gives the same initial network.
        k_model, k_method, _, k_run = jax.random.split(rng, 4)
        size, ch = cfg.data.image_size, cfg.data.channels
        variables = self.eval_model.init(k_model, jnp.zeros((2, size, size, ch)), train=False)
        params, batch_stats = variables["params"], variables.get("batch_stats", {})
        h = self.eval_model.apply(variables, jnp.zeros((2, size, size, ch)), method="represent")
        probe_params = {"w": jnp.zeros((h.shape[-1], cfg.data.num_classes)), "b": jnp.zeros((cfg.data.num_classes,))}
        state = TrainState(
            step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
            opt_state=self.tx.init(params),
            method=self.method.init_state(cfg.method, params, batch_stats, k_method, methods.embed_dim(cfg)),
            probe_params=probe_params, probe_opt_state=self.probe_tx.init(probe_params), rng=k_run,
            skipped=jnp.zeros((), jnp.int32))
        return state

    def abstract_state(self) -> TrainState:
        shapes = jax.eval_shape(lambda: self._initial_values(self.config.seed))
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.replicated), shapes)

    # ------------------------------------------------------------------- step
    def _forward(self, params, batch_stats, views):
        outs = []
        for v in views:
            out, upd = self.model.apply({"params": params, "batch_stats": batch_stats}, v, train=True,
                                        mutable=["batch_stats"])
            batch_stats = upd["batch_stats"]
            outs.append(out)
        return outs, batch_stats

    def _augment(self, k_views, batch):
        """The global and local views of a device's batch (see data/__init__.py for the two layouts)."""
        n_local = self.config.data.get("local_views", 0)

        def view(i, spec, images, crop):
            return aug.augment(jax.random.fold_in(k_views, i), images, spec, self.mean, self.std, crop=crop)

        if "image" in batch:  # fixed-size images: the whole recipe on device
            images = batch["image"]
            return ([view(i, s, images, True) for i, s in enumerate(self.views)],
                    [view(100 + i, self.local_view, images, True) for i in range(n_local)])
        # Streaming sources cropped each view on the host; the rest of the recipe runs here.
        return ([view(i, s, batch["views"][:, i], False) for i, s in enumerate(self.views)],
                [view(100 + i, self.local_view, batch["local_views"][:, i], False) for i in range(n_local)])

    def _per_device(self, state: TrainState, batch: dict, initial_params):
        """The step one device runs: its shard of the batch, the replicated state."""
        cfg, method = self.config, self.method
        k_views, loss_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
        k_views = jax.random.fold_in(k_views, jax.lax.axis_index(AXIS))  # per device; loss_key is shared (W-MSE)
        views, locals_ = self._augment(k_views, batch)
        target_outs = None
        if "target" in state.method:  # an EMA target network (BYOL, MoCo, DINO)
            t = state.method["target"]
            target_outs = jax.lax.stop_gradient(self._forward(t["params"], t["batch_stats"], views)[0])

        def loss_fn(params):
            outs, bs = self._forward(params, state.batch_stats, views)
            # Running BatchNorm statistics come from the global views only: the
            # small local crops would otherwise dominate what evaluation sees.
            local_outs, _ = self._forward(params, bs, locals_)
            fwd = methods.Forward(outs, target_outs, local_outs, state.method, state.step, loss_key)
            a, b, inputs = method.loss_inputs(cfg.method, fwd)
            loss, aux = method.loss(cfg.method, a, b, inputs, fwd, AXIS)
            return loss, (aux, fwd, bs)

        # Differentiate a per-device copy of the parameters, then average: the pmap program.
        params_v = jax.lax.pcast(state.params, AXIS, to="varying")
        (loss, (aux, fwd, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params_v)
        grads = method.grads(cfg.method, jax.lax.pmean(grads, AXIS), state.step)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        params, method_state = method.after_update(cfg.method, params, batch_stats, fwd,
                                                   (state.step, self.total_steps), AXIS)
        probe_params, probe_opt_state, probe_metrics = self._online_probe(state, fwd.outs[0]["h"], batch["label"])

        metrics = dict(jax.lax.pmean(dict(loss=loss, **aux), AXIS), **probe_metrics)
        metrics.update(self._health(state, fwd.outs[0]["z"], params, initial_params, grads))
        metrics["finite"] = (jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
                             & jnp.isfinite(metrics["probe_loss"]) & jnp.isfinite(optax.tree.norm(params))
                             & jnp.isfinite(optax.tree.norm(batch_stats)))
        new = TrainState(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                         method=method_state, probe_params=probe_params, probe_opt_state=probe_opt_state,
                         rng=state.rng, skipped=state.skipped)
        # A non-finite step is never applied: the state is kept and the step counted as skipped.
        kept = state.replace(step=state.step + 1, skipped=state.skipped + 1)
        return jax.tree.map(lambda a, b: jnp.where(metrics["finite"], a, b), new, kept), metrics

    def _online_probe(self, state: TrainState, h, labels):
        """One Adam step of the online linear probe on the stop-gradient representation of view 1."""

        def probe_loss(p):
            return probe.online_loss(p, jax.lax.stop_gradient(h), labels, AXIS)

        (p_loss, logits), p_grads = jax.value_and_grad(probe_loss, has_aux=True)(
            jax.lax.pcast(state.probe_params, AXIS, to="varying"))
        p_grads = jax.lax.pmean(p_grads, AXIS)
        p_updates, probe_opt_state = self.probe_tx.update(p_grads, state.probe_opt_state, state.probe_params)
        metrics = dict(probe_loss=jax.lax.pmean(p_loss, AXIS),
                       probe_top1=jax.lax.pmean(probe.online_accuracy(logits, labels, AXIS), AXIS))
        return optax.apply_updates(state.probe_params, p_updates), probe_opt_state, metrics

    def _health(self, state: TrainState, z, params, initial_params, grads) -> dict:
        """Is it training: z's spread, each module's drift from initialisation, RankMe, gradient norm, lr."""
        z = jax.lax.stop_gradient(z)  # projector output of view 1
        zn = losses.normalize_embeddings(z)
        var = losses.collectives.batch_mean(zn * zn, AXIS) - jnp.square(losses.collectives.batch_mean(zn, AXIS))
        out = dict(z_std=jax.lax.pmean(jnp.mean(jnp.sqrt(jnp.maximum(var, 0.0))) * jnp.sqrt(zn.shape[-1]), AXIS),
                   **health.drift(params, initial_params))
        # RankMe needs an eigendecomposition (5% of a CPU step): only on the steps the loop logs.
        new_step = state.step + 1
        cfg = self.config
        logged = (new_step % cfg.train.log_every == 0) | (new_step == 1) | (new_step == self.total_steps)
        out["rankme_z"] = jax.lax.cond(logged, lambda: health.rankme(z, AXIS), lambda: jnp.float32(jnp.nan))
        out["grad_norm"] = optax.tree.norm(grads)
        out["lr"] = self.schedule(state.step - state.skipped)  # the optimiser counts applied updates only
        return out

    def _make_step(self):
        fn = jax.shard_map(self._per_device, mesh=self.mesh, in_specs=(P(), P(AXIS), P()), out_specs=(P(), P()))
        return jax.jit(fn, donate_argnums=(0,))

    def compile_step(self, state: TrainState, batch: dict):
        """The step compiled ahead of time for these shapes (benchmarks read its cost analysis)."""
        return self._step.lower(state, batch, self.initial_params()).compile()

    def step_fn(self, state: TrainState, batch: dict):
        """One training step on a global batch (from device_batch): (new state, metrics). `state` is donated."""
        return self._step(state, batch, self.initial_params())

    def device_batch(self, batch: dict) -> dict:
        """This host's rows of a global batch -> global arrays sharded over the mesh's batch axis."""
        return {k: jax.make_array_from_process_local_data(self.sharded, v) for k, v in batch.items()}

    # ------------------------------------------------------------------ eval
    def features(self, params, batch_stats, arrays: dict, batch: int = 1000) -> np.ndarray:
        """Frozen representations of every image of `arrays` (no augmentation)."""
        from duality import pretrained

        return pretrained.Encoder(self.config, params, batch_stats).encode(arrays["image"], batch)["h"]


def prepare(config: ml_collections.ConfigDict, workdir: str) -> tuple[Trainer, bool]:
    """Every check of the inputs, before anything is written: the trainer and whether the run resumes.

    Raises ValueError / OSError naming the problem and the fix (an unknown
    method, data set or model, a batch the devices cannot split, missing data,
    an unwritable workdir, a resume with an incompatible config); the CLI maps
    these to exit code 2.
    """
    if not workdir:
        raise ValueError("pretraining needs --workdir=DIR (checkpoints, metrics and results are written there)")
    config_check.check(config)  # every field's type and range, the method's block, the loss's hyperparameters
    checkpoint.check_writable(workdir)
    lock.check(workdir)  # another live run on this workdir
    l2 = config.eval.get("probe_l2", probe.L2_GRID)
    l2 = list(l2) if np.ndim(l2) else [l2]
    if config.eval.get("linear_probe", True) and (not l2 or not all(np.isfinite(float(v)) and float(v) >= 0 for v in l2)):
        raise ValueError(f"eval.probe_l2={tuple(l2)!r}: give one or more finite L2 penalties >= 0, e.g. "
                         f"--config.eval.probe_l2='(1e-4, 1e-3)' (they are chosen between on held-out train)")
    trainer = Trainer(config)
    trainer.abstract_state()  # traces the model's init: an unknown encoder or a bad shape fails here
    resuming = checkpoint.has_checkpoint(workdir)
    checkpoint.check_config(workdir, config.to_dict(), resuming)
    if resuming:
        saved = checkpoint.Checkpointer(workdir, every=0, keep=None, read_only=True)
        latest = saved.latest_step()
        saved.close()
        if latest is not None and latest > trainer.total_steps:
            raise ValueError(
                f"{workdir} holds a checkpoint at step {latest}, past this config's {trainer.total_steps} steps "
                f"(train.steps={config.train.steps}, train.epochs={config.train.epochs}); give at least "
                f"--config.train.steps={latest}, or use a new --workdir")
    return trainer, resuming


def _say(*args):
    if jax.process_index() == 0:
        print(*args, flush=True)


def _check_finite(config, step: int, m: dict, skipped_in_run: int, workdir: str, latest) -> None:
    """Handle a step whose loss, gradient or new state was not finite (its update was not applied).

    Warns that it was skipped, or raises FloatingPointError when the config
    says stop (the default) or too many steps were skipped.
    """
    if m["finite"]:
        return
    terms = ", ".join(f"{k}={float(v):.4g}" for k, v in m.items() if k not in ("finite", "lr"))
    what = [n for n, k in (("loss", "loss"), ("gradient", "grad_norm"), ("online probe", "probe_loss"))
            if not np.isfinite(m[k])] or ["updated parameters or BatchNorm statistics"]
    terms = f"non-finite {' and '.join(what)}; {terms}"
    saved = f"the newest checkpoint (step {latest}) holds the last good state" if latest is not None else \
        "no checkpoint was written"
    if config.train.get("nonfinite", "stop") == "stop":
        raise FloatingPointError(
            f"step {step}: {terms}. The update was not applied and nothing "
            f"after it was saved: {saved} in {workdir}. Lower optim.base_lr, change the method's hyperparameters, "
            f"or set --config.train.nonfinite=skip to skip such steps (at most train.max_skipped).")
    _say(f"warning: step {step} skipped: {terms}")
    if skipped_in_run > config.train.max_skipped:
        raise FloatingPointError(
            f"{skipped_in_run} steps of this run had a non-finite loss, gradient or state (limit "
            f"train.max_skipped={config.train.max_skipped}), the last at step {step} ({terms}); none was applied, "
            f"so every checkpoint in {workdir} is finite. Lower optim.base_lr or change the method's "
            f"hyperparameters in a new --workdir.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, prepared: tuple[Trainer, bool] | None = None,
                       started: float | None = None) -> tuple[Trainer, TrainState, dict]:
    """The main job: `fit`, then `evaluate` a finished run: (trainer, final state, probe results or {}).

    `started`: the process's time.perf_counter() at start; the job then ends
    by printing where its wall time went (and writes it to wall_time.json).
    """
    t_fit = time.perf_counter()
    trainer, state = fit(config, workdir, prepared=prepared)
    t_plot = time.perf_counter()
    if jax.process_index() == 0:
        from duality.analysis import curves

        _say(f"training curves: {curves.plot_training(workdir)}")
    results = {}
    t_eval = time.perf_counter()
    if int(state.step) >= trainer.total_steps and config.eval.linear_probe:
        results = evaluate(trainer, state, workdir)
    if started is not None:
        wall_time(trainer, workdir, started, t_fit, t_plot, t_eval, time.perf_counter())
    return trainer, state, results


def wall_time(trainer: Trainer, workdir: str, started: float, t_fit: float, t_plot: float, t_eval: float,
              t_end: float) -> dict:
    """Where the job's wall time went (issue 14): start-up (imports, data, model, checks, restoring a
    checkpoint), the first step (its call compiles), the remaining steps, curves, probe, and the host's
    batch-making time as a share of the remaining steps: an upper bound on the wait for data, since a batch
    is made while the previous step still runs on the device."""
    w = getattr(trainer, "wall", None) or dict(steps=0, loop_start=t_fit, loop_s=0.0, compile_s=0.0, batch_s=0.0)
    train_s = w["loop_s"] - w["compile_s"]
    split = {"start_up_s": w["loop_start"] - started, "compile_s": w["compile_s"], "train_s": train_s,
             "steps": w["steps"], "batch_share": w["batch_s"] / train_s if train_s > 0 else 0.0,
             "curves_s": t_eval - t_plot, "probe_s": t_end - t_eval, "total_s": t_end - started}
    split["other_s"] = split["total_s"] - (split["start_up_s"] + w["loop_s"] + split["curves_s"] + split["probe_s"])
    _say(f"wall time {split['total_s']:.0f} s: start-up {split['start_up_s']:.0f} s (imports, data, model, checks), "
         f"first step {split['compile_s']:.0f} s (compilation), {max(w['steps'] - 1, 0)} more steps "
         f"{train_s:.0f} s (making batches on the host: {100 * split['batch_share']:.1f}% of it), curves "
         f"{split['curves_s']:.0f} s, probe {split['probe_s']:.0f} s, other {split['other_s']:.0f} s")
    if jax.process_index() == 0:
        fileio.write_text(os.path.join(workdir, "wall_time.json"),
                          json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in split.items()},
                                     indent=2))
    return split


def evaluate(trainer: Trainer, state: TrainState, workdir: str) -> dict:
    """Linear probe of the frozen encoder on the test split, beside (eval.baselines) the same probe on raw
    pixels and on the encoder at initialisation, computed in the same run; printed and written to
    workdir/linear_probe.json."""
    cfg = trainer.config
    d = trainer.data
    kw = dict(num_classes=cfg.data.num_classes, l2=tuple(cfg.eval.probe_l2), seed=cfg.seed)

    def probe_encoder(params, batch_stats):
        return probe.linear_probe(trainer.features(params, batch_stats, d.train_arrays), d.train_arrays["label"],
                                  trainer.features(params, batch_stats, d.test_arrays), d.test_arrays["label"], **kw)

    results = {"pretrained": probe_encoder(state.params, state.batch_stats)}
    if cfg.eval.baselines:
        init = trainer.init_state(cfg.seed)
        results["random_init"] = probe_encoder(init.params, init.batch_stats)
        results["raw_pixels"] = probe.linear_probe(d.train_arrays["image"] / 255.0, d.train_arrays["label"],
                                                   d.test_arrays["image"] / 255.0, d.test_arrays["label"], **kw)
    _say(f"\nlinear probe on {cfg.data.name} test ({len(d.test_arrays['label'])} images), frozen features:")
    for name, r in results.items():
        _say(f"  {name:<12} top-1 {r['top1']:6.2f}%   top-5 {r['top5']:6.2f}%   (L-BFGS: l2 {r['l2']:g}, "
             f"{r['iterations']} iterations, gradient norm {r['grad_norm']:.1e})")
    if jax.process_index() == 0:
        fileio.write_text(os.path.join(workdir, "linear_probe.json"),
                          json.dumps({"step": int(state.step), **results}, indent=2))
    return results


def fit(config: ml_collections.ConfigDict, workdir: str, stop_at: int | None = None,
        prepared: tuple[Trainer, bool] | None = None) -> tuple[Trainer, TrainState]:
    """Pretrain (resuming from `workdir` if it holds a checkpoint); return the trainer and final state.

    `stop_at`: stop after that step as a preemption would (checkpoint saved;
    the schedule still spans the full run, so resuming continues it exactly).
    `prepared`: what `prepare(config, workdir)` returned, when the caller ran it.

    Every step's metrics are fetched one step late (while the next step runs,
    so the device never waits for the host): a non-finite step is named
    exactly, and each checkpoint is written only after every step before it
    was checked.
    """
    trainer, resuming = prepared or prepare(config, workdir)
    held = lock.Lock(workdir)  # the first thing written: a second run on this workdir now stops at prepare
    try:
        return _fit(trainer, resuming, config, workdir, stop_at, held)
    finally:
        held.release()


def _fit(trainer: Trainer, resuming: bool, config, workdir: str, stop_at, held) -> tuple[Trainer, TrainState]:
    ckpt = checkpoint.Checkpointer(workdir, config.train.checkpoint_every, config.train.keep_checkpoints)
    if resuming:
        state = ckpt.restore(trainer.abstract_state())
        _say(f"resumed from {workdir} at step {int(state.step)}")
    else:
        state = trainer.init_state(config.seed)
    changes = checkpoint.config_changes(workdir, config.to_dict()) if resuming else {}
    if changes:
        _say(f"resuming at step {int(state.step)} with changed settings (recorded in config_history.jsonl): "
             + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()))
    checkpoint.write_config(workdir, config.to_dict(), step=int(state.step), changes=changes)
    writer = Writer(workdir, start_step=int(state.step))
    step = int(state.step)
    total = trainer.total_steps
    progress = Progress(total, trainer.global_batch, step)
    log_every = config.train.log_every
    _say(f"training {config.method.name} / {config.model.encoder} on {config.data.name}: {total} steps of "
         f"{trainer.global_batch} images on {jax.device_count()} {jax.default_backend()} device(s)"
         + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""))
    ckpt.install_signal_handlers()
    skipped_at_start = int(state.skipped)
    skipped_in_run = 0
    t_start, start_step, last, pending = time.perf_counter(), step, {}, None
    first_call_s, batch_s = None, 0.0  # the first step_fn call (it compiles), host time spent making batches

    def settle():
        """Fetch, check and log the metrics of the newest step not yet looked at."""
        nonlocal pending, last, skipped_in_run
        if pending is None:
            return
        s, m = pending
        pending = None
        m = jax.device_get(m)
        skipped_in_run += int(not m["finite"])
        _check_finite(config, s, m, skipped_in_run, workdir, ckpt.latest_step())
        m = {k: v for k, v in m.items() if k != "finite"}
        if s % log_every == 0 or s == total or s == 1:
            last = m
            writer.write(s, m)
            _say(progress.line(s, m))
            held.heartbeat()

    failed = True
    try:
        if total == 0 and step == 0:  # train.epochs=0: the encoder at initialisation, saved to be probed as a baseline
            ckpt.save(0, state, force=True)
        while step < total:
            t0 = time.perf_counter()
            batch = trainer.device_batch(trainer.data.train.batch(step))
            t1 = time.perf_counter()
            state, metrics = trainer.step_fn(state, batch)  # returns at dispatch, except the first (compilation)
            if first_call_s is None:
                first_call_s = time.perf_counter() - t1
            batch_s += t1 - t0
            step += 1
            settle()  # the previous step's metrics: ready, or nearly, by now
            pending = (step, metrics)
            stop = stop_at is not None and step >= stop_at and step < total
            interrupted = distributed.any_process(ckpt.interrupted is not None)
            if step == total or stop or interrupted or (ckpt.every > 0 and step % ckpt.every == 0):
                settle()  # nothing is saved before its steps were checked
                if ckpt.save(step, state, force=step == total or stop or interrupted):
                    writer.flush()  # on gs://, the rows a resume from this checkpoint keeps are stored with it
            if stop:
                _say(f"stopped at step {step} (stop_at); re-run to resume")
                break
            if interrupted:
                _say(f"interrupted by signal {ckpt.interrupted or 'on another process'} at step {step}: checkpoint "
                     f"saved in {workdir}; re-run the same command to resume")
                break
        settle()
        failed = False
    finally:
        ckpt.restore_signal_handlers()
        try:
            ckpt.close()
        except checkpoint.CheckpointError:
            if not failed:
                raise
        writer.close()
    elapsed = time.perf_counter() - t_start
    trainer.wall = dict(steps=step - start_step, loop_start=t_start, loop_s=elapsed, compile_s=first_call_s or 0.0,
                        batch_s=batch_s)
    rate = (step - start_step) * trainer.global_batch / max(elapsed, 1e-9)
    summary = " ".join(f"{k}={float(v):.4g}" for k, v in last.items())
    _say(f"done: step {step}/{total}, {step - start_step} steps in {elapsed:.0f} s ({rate:,.0f} img/s including "
         f"compilation); skipped {int(state.skipped)} ({int(state.skipped) - skipped_at_start} in this run); last "
         f"metrics: {summary}")
    return trainer, state
