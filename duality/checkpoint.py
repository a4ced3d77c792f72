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

Faults, and what survives them (each is a test in tests/test_faults.py):
- killed mid-save (kill -9, preemption without notice): Orbax writes into a
  temporary directory and renames it when complete, so a half-written
  checkpoint is never taken for one; it is cleaned up at the next start.
- a newest checkpoint that cannot be read (truncated, corrupted): `restore`
  moves it to `checkpoints.corrupt/` (kept for inspection, never deleted;
  on gs:// a copy then a delete, as object stores cannot rename),
  says so, and falls back to the previous one.
- a save that fails (disk full, permissions): `CheckpointError` names the
  step and the cause, and the previous checkpoint stays as it was.
- an unwritable workdir: found before anything runs (`check_writable`).
"""
from __future__ import annotations

import json
import os
import signal
import tempfile
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from duality import fileio

# Fields whose change makes an existing checkpoint mean something else, or
# would make the resumed run differ from an uninterrupted one (the data order
# depends on the seed, the subset and the batch; the optimiser state's
# structure on optim.name, clipping and groups). data.data_dir may move between machines.
IDENTITY_FIELDS = ("seed", "model", "method", "data.name", "data.image_size", "data.channels", "data.num_classes",
                   "data.global_batch", "data.train_subset", "data.views", "data.local_views", "data.local_view",
                   "data.mean", "data.std", "data.shuffle_buffer", "optim.name", "optim.clip_norm", "optim.clip_lr",
                   "optim.groups")
_MISSING = object()


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg.get(part, _MISSING) if isinstance(cfg, dict) else _MISSING
    return cfg


class CheckpointError(RuntimeError):
    """A checkpoint could not be written; the previous one is intact."""


def check_writable(workdir: str) -> None:
    """Fail before any work if `workdir` cannot be created or written (creates nothing itself)."""
    if fileio.is_remote(workdir) and not fileio.is_object_store(workdir):  # ram://, hdfs://: made on first write
        return
    if fileio.is_remote(workdir):  # gs:// and the like: the bucket must exist and answer
        bucket = fileio.bucket(workdir)
        try:
            reachable = fileio.exists(bucket) or fileio.isdir(bucket)
        except Exception as e:  # noqa: BLE001 (each client raises its own types: auth, DNS, HTTP)
            raise PermissionError(f"--workdir={workdir}: cannot reach {bucket} ({type(e).__name__}: "
                                  f"{str(e)[:200]}); check the bucket's name, your credentials and the network") from e
        if not reachable:
            raise NotADirectoryError(f"--workdir={workdir}: the bucket {bucket} does not exist; create it "
                                     f"(e.g. gcloud storage buckets create {bucket}) or choose another --workdir")
        return
    path = os.path.abspath(workdir)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise NotADirectoryError(f"--workdir={workdir}: {path} is a file, not a directory; choose another --workdir")
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"--workdir={workdir}: {path} is not writable by this user; choose a writable "
                              f"--workdir or fix its permissions")
    try:  # access() says yes to root everywhere, and /proc or a read-only mount still refuse: try, leave nothing
        os.rmdir(tempfile.mkdtemp(prefix=".duality-write-test-", dir=path))
    except OSError as e:
        raise PermissionError(f"--workdir={workdir}: cannot create a directory in {path} ({e.strerror}); choose "
                              f"another --workdir") from None


def has_checkpoint(workdir: str) -> bool:
    """Whether `workdir` holds a finished checkpoint; reads only (a fresh workdir stays uncreated).

    With several processes, process 0's answer is everyone's, and no process
    goes on (to create checkpoints/ through its manager) before process 0 has
    looked: otherwise a slow host could find the directory a fast one just
    made, and the two would disagree on whether the run resumes.
    """
    directory = fileio.join(workdir, "checkpoints")
    if not fileio.is_remote(workdir):
        # Orbax renames a step's temporary directory to the bare step number
        # once it is complete, so a listing answers without any collective.
        found = any(d.isdigit() for d in fileio.listdir(directory))
    else:  # object stores mark completion differently: ask Orbax (read-only: no pruning, no clean-up)
        ckpt = Checkpointer(workdir, every=0, keep=None, read_only=True)
        try:
            found = ckpt.latest_step() is not None
        finally:
            ckpt.manager.close()
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        found = bool(multihost_utils.broadcast_one_to_all(np.int32(found)))
    return found


def stored_config(workdir: str) -> dict | None:
    """The workdir's config.json in the current layout (methods.upgrade), as JSON stores it; None if absent."""
    path = fileio.join(workdir, "config.json")
    if not fileio.exists(path):
        return None
    from duality import methods

    return json.loads(json.dumps(methods.upgrade(json.loads(fileio.read_text(path)))))


def check_config(workdir: str, cfg_dict: dict, resuming: bool) -> None:
    """When resuming, compare `cfg_dict` with the workdir's config.json; writes nothing."""
    cfg_dict = json.loads(json.dumps(cfg_dict))  # as stored: tuples become lists
    old = stored_config(workdir) if resuming else None
    if old is not None:
        # A field the stored config lacks was added to the code after that run started: not a change.
        changed = [k for k in IDENTITY_FIELDS if _get(old, k) is not _MISSING and _get(old, k) != _get(cfg_dict, k)]
        if changed:
            details = "; ".join(f"{k}: {_get(old, k)!r} -> {_get(cfg_dict, k)!r}" for k in changed)
            raise ValueError(
                f"{workdir} holds a run with a different {', '.join(changed)} ({details}). Resuming would load "
                f"a checkpoint that does not match; use a new --workdir, or restore the original values.")


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested config dict as {"block.field": value} (an empty dict is one value)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(workdir: str, cfg_dict: dict) -> dict:
    """{field: [stored value, new value]} between the workdir's config.json and `cfg_dict` (empty when none)."""
    old = stored_config(workdir)
    if old is None:
        return {}
    old = flatten(old)
    new = flatten(json.loads(json.dumps(cfg_dict)))
    return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k, _MISSING) != new.get(k)}


def write_config(workdir: str, cfg_dict: dict, step: int = 0, changes: dict | None = None) -> None:
    """workdir/config.json (process 0), replaced whole. A resume whose settings changed (`changes`, from
    config_changes) first appends them to config_history.jsonl, so what each stretch of steps ran with stays
    on record."""
    if jax.process_index() != 0:
        return
    if changes:
        path = fileio.join(workdir, "config_history.jsonl")
        before = fileio.read_text(path) if fileio.exists(path) else ""
        line = json.dumps({"from_step": int(step), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "changed": changes})
        fileio.write_text(path, before + line + "\n")
    fileio.write_text(fileio.join(workdir, "config.json"), json.dumps(cfg_dict, indent=2, sort_keys=True))


def digest(state) -> dict:
    """{leaf path: "crc32 dtype shape"} of a replicated state: what a checkpoint must give back, bit for bit.

    Orbax and tensorstore detect a truncated or unparsable file, not bytes
    changed in place; a CRC-32 of every array, written beside each checkpoint
    and compared on restore, does."""
    import zlib

    def host(x):
        return np.asarray(x.addressable_data(0) if isinstance(x, jax.Array) else x)

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        a = np.ascontiguousarray(host(leaf))
        crc = zlib.crc32(a.view(np.uint8).reshape(-1))
        out[jax.tree_util.keystr(path, simple=True, separator="/")] = f"{crc:08x} {a.dtype} {list(a.shape)}"
    return out


def digest_path(directory: str, step: int) -> str:
    """Where the digest of checkpoint `step` of checkpoints/ `directory` lives (checkpoints.digests/<step>.json)."""
    return fileio.join(directory.rstrip("/") + ".digests", f"{step}.json")


def verify(directory: str, step: int, state) -> None:
    """Raise ValueError naming the first array whose bytes differ from what was saved (no digest: nothing to do;
    checkpoints written before digests existed restore as before)."""
    path = digest_path(directory, step)
    if not fileio.exists(path):
        return
    saved, now = json.loads(fileio.read_text(path)), digest(state)
    bad = [k for k in saved if now.get(k) != saved[k]] + sorted(set(now) - set(saved))
    if bad:
        raise ValueError(f"checksum mismatch in {len(bad)} array(s) of the checkpoint of step {step}, first "
                         f"{bad[0]} (saved {saved.get(bad[0])}, read {now.get(bad[0])})")


class Checkpointer:
    def __init__(self, workdir: str, every: int, keep: int | None, read_only: bool = False):
        self.every = every
        self.directory = fileio.abspath(fileio.join(workdir, "checkpoints"))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                                 create=not read_only, read_only=read_only,
                                                 cleanup_tmp_directories=not read_only))
        self.interrupted = None
        self.read_only = read_only
        self._previous = {}

    def latest_step(self):
        return self.manager.latest_step()

    def restore(self, abstract_state, step=None):
        """The checkpoint of `step`, or the newest one that can be read.

        Without `step`, a checkpoint that fails to restore is moved aside (to
        checkpoints.corrupt/, next to checkpoints/) and the previous one is
        tried: a run resumes from the newest readable state instead of dying
        on a file a crash or a full disk truncated.
        """
        if step is not None:
            state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
            verify(self.directory, step, state)
            return state
        for s in sorted(self.manager.all_steps(), reverse=True):
            try:
                state = self.manager.restore(s, args=ocp.args.StandardRestore(abstract_state))
                verify(self.directory, s, state)  # bytes changed in place restore "fine": the digest says
                return state
            except Exception as e:  # noqa: BLE001 (Orbax and tensorstore raise many types for a bad file)
                moved = self._quarantine(s)
                print(f"warning: the checkpoint of step {s} could not be restored ({type(e).__name__}: "
                      f"{str(e)[:300]}); moved it to {moved} and trying the previous one", flush=True)
        raise FileNotFoundError(f"no checkpoint in {self.directory} could be restored")

    def _quarantine(self, step: int) -> str:
        src = fileio.join(self.directory, str(step))
        dst_dir = self.directory.rstrip("/") + ".corrupt"
        dst = fileio.join(dst_dir, str(step))
        if jax.process_index() == 0:
            fileio.move_tree(src, dst)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"quarantine checkpoint {step}")
        self.manager.reload()
        return dst

    def save(self, step: int, state, force: bool = False) -> bool:
        if not force and (self.every <= 0 or step % self.every):
            return False
        if self.manager.latest_step() == step:
            return False
        try:
            if jax.process_index() == 0:  # written first: a digest without its checkpoint is never read
                fileio.write_text(digest_path(self.directory, step), json.dumps(digest(state)))
                self._prune_digests(step)
            return self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        except Exception as e:  # noqa: BLE001 (includes a previous asynchronous save's failure)
            raise self._error(step, e) from e

    def _prune_digests(self, saving: int | None = None) -> None:
        """Drop the digests of checkpoints Orbax no longer keeps."""
        folder = self.directory.rstrip("/") + ".digests"
        keep = set(self.manager.all_steps()) | {saving}
        for name in fileio.listdir(folder):
            if name.endswith(".json") and name[:-5].isdigit() and int(name[:-5]) not in keep:
                fileio.remove(fileio.join(folder, name))

    def _error(self, step, e) -> CheckpointError:
        try:
            kept = [s for s in self.manager.all_steps() if s != step]
        except Exception:  # noqa: BLE001
            kept = []
        previous = f"step {max(kept)}" if kept else "none"
        return CheckpointError(
            f"saving the checkpoint of step {step} to {self.directory} failed ({type(e).__name__}: {e}). The "
            f"previous checkpoint ({previous}) is intact; free space or fix permissions, then re-run the same "
            f"command to resume from it.")

    def wait(self):
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001
            raise self._error(self.manager.latest_step(), e) from e

    def close(self):
        try:
            self.wait()
            if not self.read_only and jax.process_index() == 0:
                self._prune_digests()  # the last save's pruning ran before Orbax deleted the oldest step
        finally:
            self.manager.close()

    # Interruption: the handler only records the signal; the loop saves at the
    # next step boundary, where the state is consistent.
    def install_signal_handlers(self):
        def handler(signum, frame):
            if self.interrupted is not None:  # a second signal: the run did not reach a step boundary
                self.restore_signal_handlers()
                raise KeyboardInterrupt(f"second signal {signum} before the run could stop at a step boundary "
                                        f"(the first was {self.interrupted}): stopped without a new checkpoint")
            self.interrupted = signum

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, handler)

    def restore_signal_handlers(self):
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous = {}
