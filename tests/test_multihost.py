"""Multi-host on one machine: 2 processes x 4 CPU devices, joined by JAX's
distributed runtime on 127.0.0.1 (collectives over gloo), through
launch/local_multiprocess.sh, train exactly as 1 process x 8 devices with the
same global batch and seed; a SIGTERM that reaches one process stops both at
the same step with one checkpoint."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from duality import checkpoint, train
from tests.test_faults import ROOT, TINY, restore_checkpoint
from tests.test_pipeline import needs_fmnist
from tests.train_configs import tiny

pytestmark = [needs_fmnist, pytest.mark.slow]
SCRIPT = os.path.join(ROOT, "launch", "local_multiprocess.sh")


def _main(workdir, *extra):
    return ["--config=configs/vicreg.py:fashion_mnist", f"--workdir={workdir}", *TINY, *extra]


def _multiprocess(tmp_path, workdir, *extra, n=2):
    env = dict(os.environ, PYTHON=sys.executable, DEVICES_PER_PROCESS="4", LOG_DIR=str(tmp_path / "logs"))
    return subprocess.Popen(["bash", SCRIPT, str(n), *_main(workdir, *extra)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _logs(tmp_path):
    return "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))


def _communicate(proc, tmp_path, timeout):
    """Waits for the launcher; past `timeout` (generous: under CI two xdist
    workers and both processes share two cores, and compilation dominates)
    kills its process group and fails with everything both processes printed,
    so a hang shows where it stopped."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
        raise AssertionError(f"no exit after {timeout} s:\n{out}\n--- other processes ---\n{_logs(tmp_path)}")


def test_two_processes_of_four_devices_train_like_one_process_of_eight(tmp_path):
    steps = 3
    cfg = tiny("vicreg", steps=steps)  # what TINY sets on the command line
    cfg.eval.linear_probe = False
    train.fit(cfg, str(tmp_path / "one"))  # this process: 1 x 8 devices
    proc = _multiprocess(tmp_path, tmp_path / "two", f"--config.train.steps={steps}")
    out = _communicate(proc, tmp_path, timeout=900)
    logs = _logs(tmp_path)
    assert proc.returncode == 0, out + logs
    assert "process 0 of 2 (explicit coordinator" in out and "8 global cpu devices" in out
    assert "on 8 cpu device(s) in 2 processes" in out and f"done: step {steps}/{steps}" in out
    assert "step 1/" not in logs  # only process 0 prints progress and writes metrics
    a, b = restore_checkpoint(str(tmp_path / "one")), restore_checkpoint(str(tmp_path / "two"))
    assert int(a.step) == int(b.step) == steps
    for x, y in zip(jax.tree.leaves((a.params, a.batch_stats, a.opt_state, a.probe_params)),
                    jax.tree.leaves((b.params, b.batch_stats, b.opt_state, b.probe_params))):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == steps


def test_sigterm_to_one_process_stops_all_at_the_same_step(tmp_path):
    workdir = tmp_path / "run"
    proc = _multiprocess(tmp_path, workdir, "--config.train.steps=100000", "--config.train.checkpoint_every=0")
    out, t0 = [], time.time()
    while time.time() - t0 < 600:
        line = proc.stdout.readline()
        out.append(line)
        if line.startswith("step 3/") or (not line and proc.poll() is not None):
            break
    if proc.poll() is not None:
        raise AssertionError("the processes ended before step 3:\n" + "".join(out) + proc.stdout.read() + _logs(tmp_path))
    children = subprocess.run(["pgrep", "-f", "-g", str(os.getpgid(proc.pid)), "duality.main"],
                              capture_output=True, text=True).stdout.split()
    env = {pid: open(f"/proc/{pid}/environ", "rb").read() for pid in children}
    second = [pid for pid, e in env.items() if b"DUALITY_PROCESS_ID=1" in e]
    assert len(second) == 1, (children, "".join(out))
    os.kill(int(second[0]), signal.SIGTERM)  # as a preemption notice that reached one host only
    rest = _communicate(proc, tmp_path, timeout=600)
    text = "".join(out) + rest
    assert proc.returncode == 0, text
    assert "interrupted by signal on another process" in text
    ckpt = checkpoint.Checkpointer(str(workdir), every=0, keep=None, read_only=True)
    steps = list(ckpt.manager.all_steps())
    ckpt.close()
    assert len(steps) == 1 and steps[0] >= 3, steps  # one checkpoint, written by both processes together
    state = restore_checkpoint(str(workdir))
    assert int(state.step) == steps[0] and all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))


def test_launch_scripts_parse_and_refuse_missing_arguments():
    for name in ("local_multiprocess.sh", "slurm.sbatch", "tpu_pod.sh", "local.sh", "env.sh", "test.sh"):
        r = subprocess.run(["bash", "-n", os.path.join(ROOT, "launch", name)], capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)
    r = subprocess.run(["bash", SCRIPT], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run(["bash", os.path.join(ROOT, "launch", "tpu_pod.sh")], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k not in ("TPU_NAME", "ZONE")})
    assert r.returncode != 0 and "TPU_NAME" in r.stderr
