"""One writer per workdir: a lock file naming the run that holds it.

Two runs on one workdir interleave metrics.jsonl, race for checkpoint steps
and end with one of them failing in a way that names neither. A run takes
`workdir/run.lock` (JSON: host, pid, start time, heartbeat) before it writes
anything else and removes it when it ends; a second run finds it and stops
with exit 2 naming the holder. A lock whose holder is dead is taken over:
on the same host when its pid no longer runs, on another host when its
heartbeat (refreshed on the logged steps, at most every `HEARTBEAT_S`) is
older than `STALE_S`. With several processes only
process 0 holds it.
"""
from __future__ import annotations

import json
import os
import socket
import time

import jax
import numpy as np

from duality import fileio

NAME = "run.lock"
HEARTBEAT_S = 60.0
STALE_S = 900.0


class LockedError(ValueError):
    """Another live run holds the workdir (bad input: exit 2)."""


def _path(workdir: str) -> str:
    return fileio.join(workdir, NAME)


def _alive(holder: dict) -> bool:
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, ValueError, TypeError):
            return True  # a process we may not signal is still a process
        return True
    return time.time() - float(holder.get("heartbeat", 0)) < STALE_S


def holder(workdir: str) -> dict | None:
    """The live run holding `workdir`, or None (no lock, or its holder is dead)."""
    if not fileio.exists(_path(workdir)):
        return None
    try:
        h = json.loads(fileio.read_text(_path(workdir)))
    except (ValueError, OSError):
        return None  # a half-written lock: its writer died while writing it
    return h if _alive(h) else None


def _in_use(workdir: str) -> str:
    """The refusal message when another live run holds `workdir`, else ''."""
    h = holder(workdir)
    if h is None or (h.get("host") == socket.gethostname() and int(h.get("pid", -1)) == os.getpid()):
        return ""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(h.get("start", 0))))
    return (f"{workdir} is in use by another run: host {h.get('host')}, pid {h.get('pid')}, started {started}. "
            f"Wait for it or stop it, or use another --workdir; a lock whose run has died is taken over "
            f"(on another host after {STALE_S / 60:.0f} minutes without a heartbeat).")


def check(workdir: str) -> None:
    """Raise LockedError naming the holder when another live run holds `workdir` (writes nothing).

    Process 0 looks and every process gets its answer, so all stop together."""
    msg = _in_use(workdir) if jax.process_index() == 0 else ""
    locked = bool(msg)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        locked = bool(multihost_utils.broadcast_one_to_all(np.int32(locked)))
    if locked:
        raise LockedError(msg or f"{workdir} is in use by another run (process 0 found its lock, {NAME})")


class Lock:
    """Held for the life of a run by process 0 (`check` ran first, in train.prepare)."""

    def __init__(self, workdir: str):
        self.workdir, self.main = workdir, jax.process_index() == 0
        self._beat = 0.0
        if self.main:
            self.record = dict(host=socket.gethostname(), pid=os.getpid(), start=time.time())
            self.heartbeat(force=True)

    def heartbeat(self, force: bool = False) -> None:
        if not self.main or (not force and time.monotonic() - self._beat < HEARTBEAT_S):
            return
        fileio.write_text(_path(self.workdir), json.dumps(dict(self.record, heartbeat=time.time())))
        self._beat = time.monotonic()

    def release(self) -> None:
        if self.main and fileio.exists(_path(self.workdir)):
            fileio.remove(_path(self.workdir))
