"""Metric writing: TensorBoard event files and metrics.jsonl (clu), and console progress."""
from __future__ import annotations

import json
import os
import time

import jax

from duality import fileio


class Writer:
    """clu's TensorBoard writer plus one JSON line per write in workdir/metrics.jsonl (process 0 only).

    A local metrics.jsonl is appended to line by line. Object stores (gs://)
    cannot append, so there the file is rewritten whole, at most every
    `remote_every` seconds and at close.

    `start_step`: the step the run (re)starts from (None: keep every row). Rows
    logged after it by an earlier attempt that died before its next checkpoint
    are about to be replayed; they are dropped first, so every step has one row.
    """

    def __init__(self, workdir: str, remote_every: float = 60.0, start_step: int | None = None):
        from clu import metric_writers  # imports TensorFlow (~4 s): only once a run really starts

        self.main = jax.process_index() == 0
        self.tb = metric_writers.create_default_writer(workdir, just_logging=not self.main, asynchronous=True)
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.remote = fileio.is_remote(workdir)
        self.remote_every, self._flushed = remote_every, time.monotonic()
        self._lines = []
        if self.main and fileio.exists(self.path):  # a resumed run keeps the earlier lines up to its step
            lines = [line for line in fileio.read_text(self.path).splitlines() if line.strip()]
            kept = [line for line in lines if start_step is None or json.loads(line)["step"] <= start_step]
            if len(kept) < len(lines):
                fileio.write_text(self.path, "".join(line + "\n" for line in kept))
            if self.remote:
                self._lines = kept

    def write(self, step: int, scalars: dict):
        scalars = {k: float(v) for k, v in scalars.items()}
        self.tb.write_scalars(step, scalars)
        if not self.main:
            return
        line = json.dumps({"step": int(step), **scalars})
        if not self.remote:
            with open(self.path, "a") as f:
                f.write(line + "\n")
            return
        self._lines.append(line)
        if time.monotonic() - self._flushed >= self.remote_every:
            self._flush()

    def _flush(self):
        fileio.write_text(self.path, "".join(line + "\n" for line in self._lines))
        self._flushed = time.monotonic()

    def close(self):
        if self.main and self.remote:
            self._flush()
        self.tb.flush()
        self.tb.close()


class Progress:
    """step/total, loss, img/s, ETA on one console line every few steps."""

    def __init__(self, total: int, global_batch: int, start_step: int):
        self.total, self.batch = total, global_batch
        self.t0, self.s0 = None, start_step

    def line(self, step: int, metrics: dict) -> str:
        now = time.perf_counter()
        if self.t0 is None:  # the first step includes compilation: time from after it
            self.t0, self.s0 = now, step
            rate = float("nan")
        else:
            rate = (step - self.s0) * self.batch / max(now - self.t0, 1e-9)
        eta = (self.total - step) * self.batch / rate if rate == rate and rate > 0 else float("nan")
        eta_s = "?" if eta != eta else time.strftime("%H:%M:%S", time.gmtime(eta))
        terms = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "loss")
        return (f"step {step}/{self.total} loss={metrics.get('loss', float('nan')):.4f} "
                f"{rate:,.0f} img/s ETA {eta_s} | {terms}")
