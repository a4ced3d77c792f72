"""Metric writing: TensorBoard event files and metrics.jsonl (clu), and console progress."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import jax

from duality import fileio


class Writer:
    """clu's TensorBoard writer plus one JSON line per write in workdir/metrics.jsonl (process 0 only).

    A local workdir: metrics.jsonl is appended to line by line and clu writes
    its event file in place. A remote one (gs://): object stores cannot append,
    so metrics.jsonl is rewritten whole, and the event file is written to a
    local staging directory and uploaded whole (fileio), at most every
    `remote_every` seconds, at each checkpoint (so a resume finds every row up
    to its step) and at close. TensorBoard reads the uploaded file
    as usual; and every byte of a remote workdir goes through fileio, so a run
    works with whichever client fileio uses (TensorFlow's, or gcsfs against an
    emulator).

    `start_step`: the step the run (re)starts from (None: keep every row). Rows
    logged after it by an earlier attempt that died before its next checkpoint
    are about to be replayed; they are dropped first, so every step has one row.
    """

    def __init__(self, workdir: str, remote_every: float = 60.0, start_step: int | None = None):
        from clu import metric_writers  # imports TensorFlow (~4 s): only once a run really starts

        self.main = jax.process_index() == 0
        self.workdir, self.remote = workdir, fileio.is_remote(workdir)
        self._staging = tempfile.mkdtemp(prefix="duality-events-") if self.remote and self.main else None
        self.tb = metric_writers.create_default_writer(self._staging or workdir, just_logging=not self.main,
                                                       asynchronous=True)
        self.path = fileio.join(workdir, "metrics.jsonl")
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
            fileio.append_text(self.path, line + "\n")
            return
        self._lines.append(line)
        if time.monotonic() - self._flushed >= self.remote_every:
            self._flush()

    def flush(self):
        """Store what was written so far (a remote workdir's files are otherwise uploaded every `remote_every` s)."""
        if self.main and self.remote:
            self._flush()

    def _flush(self):
        fileio.write_text(self.path, "".join(line + "\n" for line in self._lines))
        self.tb.flush()
        for name in os.listdir(self._staging):  # clu's event file(s): uploaded whole
            with open(os.path.join(self._staging, name), "rb") as f:
                fileio.write_bytes(fileio.join(self.workdir, name), f.read())
        self._flushed = time.monotonic()

    def close(self):
        self.flush()  # a remote workdir's last rows and events (closing clu's writer flushes a local one)
        self.tb.close()
        if self._staging:
            shutil.rmtree(self._staging, ignore_errors=True)


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
