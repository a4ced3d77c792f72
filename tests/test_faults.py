"""Injected faults: each one is survived with nothing lost.

kill -9 at random steps, SIGTERM, an unreadable newest checkpoint, a
non-finite step, an unwritable workdir and a failing save; and the bad-input
catalogue of the CLI (exit code 2, a message naming problem and fix, nothing
written). The subprocess runs use 2 fake CPU devices and a tiny model.
"""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from duality import checkpoint, train
from configs import base
from tests.test_pipeline import needs_fmnist
from tests.train_configs import tiny

pytestmark = [needs_fmnist, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = base.tiny_flags() + ["--config.eval.linear_probe=False"]


def _cmd(workdir, *extra, config="configs/vicreg.py:fashion_mnist"):
    return [sys.executable, "-m", "duality.main", f"--config={config}", f"--workdir={workdir}", *TINY, *extra]


def _env(devices=2):
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")


def _run(cmd, timeout=300, devices=2):
    return subprocess.run(cmd, cwd=ROOT, env=_env(devices), capture_output=True, text=True, timeout=timeout)


def _start(cmd, devices=2):
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _read_until(proc, prefix, timeout=180):
    out, t0 = [], time.time()
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        out.append(line)
        if line.startswith(prefix):
            return "".join(out)
    raise AssertionError(f"never saw {prefix!r}:\n" + "".join(out))


def restore_checkpoint(workdir, step=None, projector="32-16"):
    cfg = tiny("vicreg")
    cfg.model.projector = projector
    ckpt = checkpoint.Checkpointer(workdir, every=0, keep=None, read_only=True)
    try:
        state = ckpt.restore(train.Trainer(cfg).abstract_state(), step)
    finally:
        ckpt.close()
    return jax.tree.map(np.asarray, jax.device_get(state))


def _assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_kill_9_at_random_steps_then_resume_equals_an_uninterrupted_run(tmp_path):
    steps = 10
    straight = _run(_cmd(tmp_path / "straight", f"--config.train.steps={steps}"))
    assert straight.returncode == 0, straight.stdout + straight.stderr
    # the job's wall-time split (issue 14): printed, written, and its parts add up to the whole
    wall = json.loads((tmp_path / "straight" / "wall_time.json").read_text())
    assert "wall time" in straight.stdout and wall["steps"] == steps and wall["compile_s"] > 0 < wall["train_s"]
    parts = ("start_up_s", "compile_s", "train_s", "curves_s", "probe_s", "other_s")
    assert all(wall[k] >= -0.01 for k in parts) and abs(sum(wall[k] for k in parts) - wall["total_s"]) < 0.01
    assert 0 <= wall["batch_share"] < 1
    workdir = tmp_path / "killed"
    cmd = _cmd(workdir, f"--config.train.steps={steps}")
    kills = sorted(np.random.default_rng(0).choice(np.arange(2, steps), size=3, replace=False))
    resumed_at = []
    for k in kills:  # three kills, each at a later step, each followed by a restart
        proc = _start(cmd)
        text = _read_until(proc, f"step {k}/")
        proc.kill()  # SIGKILL: no handler runs, an asynchronous save may be half written
        proc.wait(timeout=60)
        if "resumed from" in text:
            resumed_at.append(int(text.split("resumed from")[1].split("at step ")[1].split()[0]))
    final = _run(cmd)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "resumed from" in final.stdout and f"done: step {steps}/{steps}" in final.stdout
    assert resumed_at and resumed_at == sorted(resumed_at)  # restarts found checkpoints, never going back
    a, b = restore_checkpoint(str(tmp_path / "straight")), restore_checkpoint(str(workdir))
    assert int(a.step) == int(b.step) == steps
    _assert_same_params(a, b)
    for x, y in zip(jax.tree.leaves(a.opt_state), jax.tree.leaves(b.opt_state)):  # momentum too
        np.testing.assert_array_equal(x, y)
    lines = [json.loads(x)["step"] for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert lines == list(range(1, steps + 1))  # replayed steps logged once each, none missing


def test_on_one_device_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    """On one CPU device BatchNorm runs as oneDNN calls (models/norm.py; across the 2 devices above, XLA's
    ops): resuming after kill -9 must be bit-identical there too, running statistics included."""
    from duality.models import onednn
    if not onednn.available():
        pytest.skip(f"oneDNN not available here: {onednn.why_not()}")
    steps = 6
    straight = _run(_cmd(tmp_path / "straight", f"--config.train.steps={steps}"), devices=1)
    assert straight.returncode == 0, straight.stdout + straight.stderr
    cmd = _cmd(tmp_path / "killed", f"--config.train.steps={steps}")
    proc = _start(cmd, devices=1)
    _read_until(proc, "step 4/")
    proc.kill()
    proc.wait(timeout=60)
    final = _run(cmd, devices=1)
    assert final.returncode == 0 and "resumed from" in final.stdout, final.stdout + final.stderr
    a, b = restore_checkpoint(str(tmp_path / "straight")), restore_checkpoint(str(tmp_path / "killed"))
    assert int(a.step) == int(b.step) == steps
    for x, y in zip(jax.tree.leaves((a.params, a.batch_stats, a.opt_state)),
                    jax.tree.leaves((b.params, b.batch_stats, b.opt_state))):
        np.testing.assert_array_equal(x, y)


def test_sigterm_saves_within_seconds_exits_0_and_the_next_start_continues(tmp_path):
    workdir = tmp_path / "run"
    proc = _start(_cmd(workdir, "--config.train.steps=100000", "--config.train.checkpoint_every=0"))
    _read_until(proc, "step 3/")
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    seconds = time.time() - t0
    assert proc.returncode == 0, rest
    assert "interrupted by signal 15" in rest, rest
    saved = checkpoint.Checkpointer(str(workdir), every=0, keep=None, read_only=True)
    step = saved.latest_step()
    saved.close()
    assert step is not None and step >= 3 and seconds < 60
    again = _run(_cmd(workdir, f"--config.train.steps={step + 2}", "--config.train.checkpoint_every=0"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed from {workdir} at step {step}" in again.stdout
    assert f"step {step + 1}/{step + 2}" in again.stdout and f"done: step {step + 2}/" in again.stdout


def test_a_second_signal_stops_a_run_that_cannot_reach_a_step_boundary(tmp_path):
    # The first SIGTERM only asks for a checkpoint at the next step; a run stuck
    # inside a step (a hung device) must still be stoppable, by a second signal.
    ckpt = checkpoint.Checkpointer(str(tmp_path), every=0, keep=None)
    before = signal.getsignal(signal.SIGTERM)
    ckpt.install_signal_handlers()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert ckpt.interrupted == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt, match="second signal"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode
        assert signal.getsignal(signal.SIGTERM) is before  # and a third takes the default path
    finally:
        ckpt.restore_signal_handlers()
        ckpt.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "noise_inside", "one_byte_each"])
def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path, capsys, damage):
    cfg = tiny("vicreg", steps=3)
    # Arrays large enough to be stored as raw chunks: noise inside one is not a decoding error, and before
    # checksums it restored silently (thousands of wrong values); only the digest catches it.
    cfg.model.projector = "32-512" if damage in ("noise_inside", "one_byte_each") else cfg.model.projector
    train.fit(cfg, str(tmp_path))
    newest = tmp_path / "checkpoints" / "3"
    files = sorted((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    if damage == "truncate":  # the largest file (array data) cut in half
        data = files[-1].read_bytes()
        files[-1].write_bytes(data[: len(data) // 2])
    elif damage == "garbage":  # every file overwritten with noise of the same size
        for f in files:
            f.write_bytes(np.random.default_rng(0).integers(0, 256, f.stat().st_size, dtype=np.uint8).tobytes())
    elif damage == "noise_inside":  # 4 KiB of noise in the middle of the array data, the size unchanged
        data = bytearray(files[-1].read_bytes())
        mid = len(data) // 2
        data[mid: mid + 4096] = np.random.default_rng(0).integers(0, 256, len(data[mid: mid + 4096]),
                                                                   dtype=np.uint8).tobytes()
        files[-1].write_bytes(bytes(data))
    elif damage == "one_byte_each":  # one byte changed in every data file (parameters, optimiser state, ...)
        for f in (p for p in files if p.parent.name == "d"):
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0x5A
            f.write_bytes(bytes(data))
    else:  # the directory emptied, as a lost volume might leave it
        for f in files:
            f.unlink()
    capsys.readouterr()
    cfg.train.steps = 4
    _, state = train.fit(cfg, str(tmp_path))
    out = capsys.readouterr().out
    assert "the checkpoint of step 3 could not be restored" in out and "resumed from" in out
    assert f"{tmp_path}/checkpoints/2" not in out and "at step 2" in out
    assert int(state.step) == 4
    assert (tmp_path / "checkpoints.corrupt" / "3").is_dir()  # kept for inspection, out of the way
    if damage not in ("truncate", "noise_inside"):
        return
    ref = tiny("vicreg", steps=4)  # the fallback run equals a run that was never damaged
    ref.model.projector = cfg.model.projector
    _, straight = train.fit(ref, str(tmp_path / "straight"))
    for x, y in zip(jax.tree.leaves(jax.device_get(state.params)), jax.tree.leaves(jax.device_get(straight.params))):
        np.testing.assert_array_equal(x, y)


def _blow_up(cfg):
    cfg.optim.base_lr = 1e35  # step 1 has lr 0 (warm-up); step 2's update overflows to inf
    return cfg


def test_a_non_finite_step_stops_the_run_naming_it_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _blow_up(tiny("vicreg", steps=4))
    with pytest.raises(FloatingPointError, match=r"step 2: non-finite updated parameters.*cov=.*inv=.*var=.*newest checkpoint \(step 1\)"):
        train.fit(cfg, str(tmp_path))
    ck = checkpoint.Checkpointer(str(tmp_path), every=0, keep=None, read_only=True)
    assert list(ck.manager.all_steps()) == [1]
    ck.close()
    state = restore_checkpoint(str(tmp_path), projector=cfg.model.projector)
    assert int(state.step) == 1 and all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))


def test_skip_mode_skips_non_finite_steps_up_to_the_limit(tmp_path, capsys):
    cfg = _blow_up(tiny("vicreg", steps=5))
    cfg.train.nonfinite = "skip"
    cfg.train.max_skipped = 2
    with pytest.raises(FloatingPointError, match=r"3 steps of this run .* the last at step 4"):
        train.fit(cfg, str(tmp_path))
    out = capsys.readouterr().out
    assert "warning: step 2 skipped" in out and "warning: step 3 skipped" in out
    ck = checkpoint.Checkpointer(str(tmp_path), every=0, keep=None, read_only=True)
    steps = ck.manager.all_steps()
    ck.close()
    assert list(steps) == [1, 2, 3]  # skipped steps leave the state as it was: finite, and saved
    state = restore_checkpoint(str(tmp_path))
    assert int(state.skipped) == 2 and all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))


def test_a_failing_save_is_a_clear_error_and_the_previous_checkpoint_survives(tmp_path, monkeypatch):
    real, calls = ocp.CheckpointManager.save, []

    def flaky(self, step, *a, **k):
        calls.append(step)
        if step == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, step, *a, **k)

    monkeypatch.setattr(ocp.CheckpointManager, "save", flaky)
    with pytest.raises(checkpoint.CheckpointError, match=r"step 2 .*No space left.*previous checkpoint \(step 1\) is intact"):
        train.fit(tiny("vicreg", steps=3), str(tmp_path))
    monkeypatch.setattr(ocp.CheckpointManager, "save", real)
    state = restore_checkpoint(str(tmp_path))
    assert int(state.step) == 1 and all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
    _, resumed = train.fit(tiny("vicreg", steps=3), str(tmp_path))  # and the run goes on from it
    assert int(resumed.step) == 3


def test_an_unwritable_workdir_is_refused_before_anything_runs(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(NotADirectoryError, match="is a file, not a directory"):
        train.fit(tiny("vicreg", steps=1), str(blocker / "run"))
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="not writable"):
            train.fit(tiny("vicreg", steps=1), str(ro / "run"))


# ------------------------------------------------------------- bad input, CLI

def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


# The CLI's exit code and message for each kind of bad input; the trainer's
# own checks of every config value are in test_train.py (in-process, faster).
BAD = {
    "unknown method": (["--config.method.name=vicregg"], "not a registered method.*vicreg"),
    "setting the method lacks": (["--config.method.queue_size=5"],
                                 "config.method has no field .queue_size.; its fields are loss, name"),
    "unknown model": (["--config.model.encoder=resnet19"], "unknown encoder 'resnet19'.*resnet18"),
    "wrong type in an override": (["--config.data.global_batch=sixteen"], "global_batch"),
    "misspelt field": (["--config.data.global_bach=16"], "global_bach"),
    "batch not divisible by devices": (["--config.data.global_batch=15"], "not divisible by the 2 devices"),
    "missing data set": (["--config.data.name=fashion_mnist", "--config.data.data_dir=/nonexistent"],
                         "apt-get install dataset-fashion-mnist"),
    "unwritable workdir": (None, "is a file, not a directory"),
    "incompatible resume": (["--config.model.projector=64-16"], "different model"),
    "stray argument": (["extra"], "unexpected arguments"),
    "a batch of zero": (["--config.data.global_batch=0"], r"data.global_batch=0 is out of range: it must be an "
                                                          r"integer >= 1; set it, e.g. --config.data.global_batch=256"),
    "a NaN learning rate": (["--config.optim.base_lr=nan"], r"optim.base_lr=nan is out of range: .*finite number > 0"),
    "no checkpoint kept": (["--config.train.keep_checkpoints=0"], r"train.keep_checkpoints=0 is out of range"),
    "a negative loss coefficient": (["--config.method.loss.cov_coeff=-1.0"], r"vicreg: cov_coeff must be >= 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_the_problem_and_the_fix_and_writes_nothing(tmp_path, case):
    extra, match = BAD[case]
    workdir = tmp_path / "run"
    if case == "unwritable workdir":
        workdir.write_text("a file")
        extra, workdir = [], workdir / "sub"
    if case == "incompatible resume":
        first = _run(_cmd(workdir, "--config.train.steps=1"))
        assert first.returncode == 0, first.stdout + first.stderr
    before = _tree(workdir)
    config_json = (workdir / "config.json").read_bytes() if before else None
    r = _run(_cmd(workdir, "--config.train.steps=1", *extra))
    assert r.returncode == 2, (case, r.stdout, r.stderr)
    assert re.search(match, r.stderr, re.S), (case, r.stderr)
    assert "Traceback" not in r.stderr
    assert _tree(workdir) == before  # nothing created, nothing overwritten
    if config_json is not None:
        assert (workdir / "config.json").read_bytes() == config_json


@pytest.mark.parametrize("text,match", [(None, r"--config: \[Errno 2\] No such file or directory: '.*nope.py'"),
                                        ("def get_config(:\n", r"--config: .*bad.py, line 1: invalid syntax")])
def test_a_missing_or_unparsable_config_file_is_bad_input(tmp_path, text, match):
    path = tmp_path / ("nope.py" if text is None else "bad.py")
    if text is not None:
        path.write_text(text)
    r = _run([sys.executable, "-m", "duality.main", f"--config={path}", f"--workdir={tmp_path / 'run'}"])
    assert r.returncode == 2 and re.search(match, r.stderr) and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()



def test_a_second_run_on_a_workdir_in_use_is_refused_naming_the_holder_until_it_dies(tmp_path):
    workdir = tmp_path / "run"
    first = _start(_cmd(workdir, "--config.train.steps=100000", "--config.train.checkpoint_every=0"))
    _read_until(first, "step 2/")
    lock = json.loads((workdir / "run.lock").read_text())
    assert lock["pid"] == first.pid
    second = _run(_cmd(workdir, "--config.train.steps=100000"))
    assert second.returncode == 2 and f"pid {first.pid}" in second.stderr and "in use by another run" in second.stderr
    assert "Traceback" not in second.stderr
    first.kill()  # kill -9: the lock stays behind, naming a dead process
    first.wait(timeout=60)
    third = _run(_cmd(workdir, "--config.train.steps=3"))
    assert third.returncode == 0, third.stderr  # taken over
    assert not (workdir / "run.lock").exists()  # and released at the end


@pytest.mark.parametrize("after", [0.3, 2.0])  # the interpreter itself starts in ~0.05 s
def test_sigterm_during_start_up_exits_0_with_a_message(tmp_path, after):
    proc = _start(_cmd(tmp_path / "run", "--config.train.steps=3"))
    time.sleep(after)  # while the interpreter starts, imports jax and TensorFlow, or parses the config
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "interrupted by signal 15 outside the training loop" in out, out


def test_a_short_soak_of_random_kills_and_sigterms_ends_identical_to_an_uninterrupted_run(tmp_path):
    """benchmarks/soak.py's short version (the README's fault table has the 20-fault figure)."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import soak

    r = soak.soak("configs/vicreg.py:fashion_mnist", faults=4, steps=40, every=3, devices=2, seed=1,
                  workdir=str(tmp_path), max_wait=12.0)
    assert r["faults"] == 4 and r["identical"] and r["metrics_once"] and not r["bad_exits"], r


def test_two_runs_started_at_once_on_one_workdir_one_trains_the_other_is_refused(tmp_path):
    # Both pass the start-up check (it runs before data and model are built); the lock's exclusive create
    # decides, so the pair cannot both train and interleave their files.
    workdir = tmp_path / "run"
    procs = [_start(_cmd(workdir, "--config.train.steps=3")) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    assert "in use by another run" in loser and "Traceback" not in loser
    rows = [json.loads(x)["step"] for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3] and not (workdir / "run.lock").exists()


def test_the_lock_is_taken_atomically_after_the_check(tmp_path):
    import socket

    from duality import lock

    workdir = tmp_path / "run"
    lock.check(str(workdir))  # nobody holds it ...
    workdir.mkdir()
    theirs = dict(host=socket.gethostname(), pid=os.getppid(), start=time.time(), heartbeat=time.time())
    (workdir / "run.lock").write_text(json.dumps(theirs))  # ... until another live run takes it
    with pytest.raises(lock.LockedError, match=f"pid {os.getppid()}"):
        lock.Lock(str(workdir))
    assert json.loads((workdir / "run.lock").read_text())["pid"] == os.getppid()  # theirs stays
    dead = subprocess.run(["true"]).returncode or subprocess.Popen(["true"])
    dead.wait()
    (workdir / "run.lock").write_text(json.dumps(dict(theirs, pid=dead.pid)))  # a run that died
    held = lock.Lock(str(workdir))  # taken over
    assert json.loads((workdir / "run.lock").read_text())["pid"] == os.getpid()
    (workdir / "run.lock").write_text(json.dumps(theirs))  # taken from us meanwhile: release leaves it
    held.release()
    assert (workdir / "run.lock").exists()


def test_analyze_with_too_few_samples_is_refused_before_the_workdir_is_read(tmp_path):
    r = _run([sys.executable, "-m", "duality.main", "--mode=analyze", f"--workdir={tmp_path / 'none'}", "--samples=0"])
    assert r.returncode == 2 and "--samples=0: the analysis needs at least 2 test images" in r.stderr, r.stderr
