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

Two runs started at the same moment both pass `check` (it runs before the
data and model are built); taking the lock settles it. On a local disk the
lock file is published with a hard link, which fails when the file exists,
so exactly one run gets it. Object stores have no exclusive create through
the clients fileio uses: there each run writes its record, waits
`SETTLE_S` and reads it back, and the run whose record is not the one stored
stops (last writer wins; two starts closer together than one upload can
still both proceed).
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
SETTLE_S = 2.0


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
    """Held for the life of a run by process 0 (`check` ran first, in train.prepare).

    Raises LockedError on every process when another run took the workdir
    since `check` looked."""

    def __init__(self, workdir: str):
        self.workdir, self.main = workdir, jax.process_index() == 0
        self._beat = 0.0
        self.record = dict(host=socket.gethostname(), pid=os.getpid(), start=time.time())
        msg = self._take() if self.main else ""
        lost = bool(msg)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            lost = bool(multihost_utils.broadcast_one_to_all(np.int32(lost)))
        if lost:
            raise LockedError(msg or f"{workdir} is in use by another run (process 0 lost the race for its lock)")

    def _take(self) -> str:
        """Take the lock: '' on success, else the refusal naming the run that holds it."""
        path = _path(self.workdir)
        text = json.dumps(dict(self.record, heartbeat=time.time()))
        if not fileio.is_remote(self.workdir):
            fileio.makedirs(self.workdir)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(text)
            try:
                for _ in range(3):
                    try:
                        os.link(tmp, path)  # atomic, and fails if the lock exists: one run wins
                        self._beat = time.monotonic()
                        return ""
                    except FileExistsError:
                        msg = _in_use(self.workdir)
                        if msg:
                            return msg
                        try:  # its holder is dead: take over (another run starting now may remove it first)
                            os.remove(path)
                        except FileNotFoundError:
                            pass
                        # another run may take it between the removal and the link: then the link fails again
                return f"{self.workdir}: could not take {NAME} (several runs are starting on it at once)"
            finally:
                os.remove(tmp)
        msg = _in_use(self.workdir)
        if msg:
            return msg
        self.heartbeat(force=True)
        time.sleep(SETTLE_S)  # a run that started at the same moment has written its record by now
        return _in_use(self.workdir)

    def heartbeat(self, force: bool = False) -> None:
        if not self.main or (not force and time.monotonic() - self._beat < HEARTBEAT_S):
            return
        fileio.write_text(_path(self.workdir), json.dumps(dict(self.record, heartbeat=time.time())))
        self._beat = time.monotonic()

    def release(self) -> None:
        """Remove the lock, if it is still this run's."""
        if not self.main or not fileio.exists(_path(self.workdir)):
            return
        try:
            h = json.loads(fileio.read_text(_path(self.workdir)))
        except (ValueError, OSError):
            h = {}
        if (h.get("host"), h.get("pid"), h.get("start")) in ((None, None, None), (
                self.record["host"], self.record["pid"], self.record["start"])):
            fileio.remove(_path(self.workdir))
