"""gs:// workdirs against a real GCS server on 127.0.0.1 (tests/gcs_emulator.py):
pretraining, kill -9 and a bit-identical resume, 2 processes x 4 devices,
duality.load, --mode=probe, --mode=analyze, the training curves and a two-cell
study, each reading and writing only the object store."""
import importlib
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from duality import checkpoint, fileio, study, train
from tests.test_faults import ROOT, TINY, _assert_same_params, _read_until, restore_checkpoint
from tests.test_multihost import SCRIPT
from tests.train_configs import tiny

pytest.importorskip("gcsfs")
pytest.importorskip("gcp_storage_emulator")
pytestmark = pytest.mark.slow
STEPS = 6


@pytest.fixture(scope="module")
def gcs():
    import fsspec

    from tests.gcs_emulator import BUCKET, Emulator

    from etils.epath import gpath

    emu = Emulator()
    saved = {k: os.environ.get(k) for k in emu.env}
    os.environ.update(emu.env)  # this process reads the bucket too (restores, load, the study)
    # epath decides once per process whether gs:// goes through TensorFlow (EPATH_USE_TF, cached when a
    # gs:// path is first used: tfds looks at gs://tfds-data in other tests of this worker): decide again.
    gpath._is_tf_installed.cache_clear()
    saved_conf = fsspec.config.conf.get("gs")
    fsspec.config.conf["gs"] = {"use_listings_cache": False}  # fsspec read FSSPEC_GS when it was imported
    emu.root = f"gs://{BUCKET}"
    yield emu
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if saved_conf is None:
        fsspec.config.conf.pop("gs", None)
    else:
        fsspec.config.conf["gs"] = saved_conf
    gpath._is_tf_installed.cache_clear()
    emu.stop()


def _env(emu, devices=2):
    return dict(os.environ, **emu.env, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                JAX_PLATFORMS="cpu")


def _cmd(workdir, *extra):
    return [sys.executable, "-m", "duality.main", "--config=configs/vicreg.py:fashion_mnist", f"--workdir={workdir}",
            *TINY, f"--config.train.steps={STEPS}", *extra]


def _run(emu, cmd, timeout=300):
    r = subprocess.run(cmd, cwd=ROOT, env=_env(emu), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def run(gcs, tmp_path_factory):
    """A gs:// run killed (-9) at step 3 and resumed to the end; and the same run straight through, locally."""
    local = tmp_path_factory.mktemp("gcs") / "straight"
    _run(gcs, _cmd(local))
    workdir = f"{gcs.root}/runs/vicreg"
    proc = subprocess.Popen(_cmd(workdir), cwd=ROOT, env=_env(gcs), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _read_until(proc, "step 3/")
    proc.kill()  # no handler runs; an asynchronous save may be half uploaded
    proc.wait(timeout=60)
    out = _run(gcs, _cmd(workdir))
    assert "resumed from" in out and f"done: step {STEPS}/{STEPS}" in out, out
    return workdir, str(local), out


def test_a_gs_run_killed_and_resumed_equals_a_local_run_straight_through(run):
    workdir, local, _ = run
    a, b = restore_checkpoint(local), restore_checkpoint(workdir)
    assert int(a.step) == int(b.step) == STEPS
    _assert_same_params(a, b)
    for x, y in zip(jax.tree.leaves(a.opt_state), jax.tree.leaves(b.opt_state)):
        np.testing.assert_array_equal(x, y)
    rows = [json.loads(x)["step"] for x in fileio.read_text(f"{workdir}/metrics.jsonl").splitlines()]
    assert rows == list(range(1, STEPS + 1))  # the replayed steps once each, none lost with the kill
    names = fileio.listdir(workdir)
    assert {"config.json", "checkpoints", "checkpoints.digests", "training_curves.png"} <= set(names)
    assert "run.lock" not in names and any(n.startswith("events.out.tfevents") for n in names)
    kept = sorted(int(s) for s in fileio.listdir(f"{workdir}/checkpoints") if s.isdigit())
    digests = sorted(int(n[:-5]) for n in fileio.listdir(f"{workdir}/checkpoints.digests"))
    assert kept and kept[-1] == STEPS and digests == kept  # a checksum for every kept checkpoint, no more
    assert not fileio.exists(f"{workdir}/config.json.tmp")


def test_load_probe_analyze_and_curves_read_and_write_only_the_bucket(run, gcs, tmp_path):
    import duality

    workdir, _, _ = run
    enc = duality.load(workdir)
    x = np.random.default_rng(0).integers(0, 255, (5, 28, 28, 1), dtype=np.uint8)
    assert enc.step == STEPS and enc.encode(x)["z"].shape == (5, 16)
    cwd_before = set(os.listdir(ROOT))
    for mode, written in (("probe", f"probe_step{STEPS}.json"), ("analyze", f"analysis_step{STEPS}.json")):
        out = subprocess.run([sys.executable, "-m", "duality.main", f"--mode={mode}", f"--workdir={workdir}"],
                             cwd=ROOT, env=_env(gcs), capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"written: {workdir}/{written}" in out.stdout
        assert json.loads(fileio.read_text(f"{workdir}/{written}"))["step"] == STEPS
    assert fileio.exists(f"{workdir}/analysis_step{STEPS}.png")
    assert set(os.listdir(ROOT)) == cwd_before  # nothing landed in a local "gs:" folder
    from duality.analysis import curves

    out = curves.plot_training(workdir, f"{workdir}/curves_again.png")
    assert out.startswith("gs://") and len(fileio.read_bytes(out)) > 10_000


def test_two_processes_of_four_devices_on_a_gs_workdir(gcs, tmp_path):
    workdir = f"{gcs.root}/runs/two_processes"
    env = dict(_env(gcs), PYTHON=sys.executable, DEVICES_PER_PROCESS="4", LOG_DIR=str(tmp_path / "logs"))
    proc = subprocess.run(["bash", SCRIPT, "2", *_cmd(workdir, "--config.train.steps=3")[3:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs
    assert "on 8 cpu device(s) in 2 processes" in proc.stdout and "done: step 3/3" in proc.stdout
    cfg = tiny("vicreg", steps=3)
    cfg.eval.linear_probe = False
    train.fit(cfg, str(tmp_path / "one"))  # this process: 1 x 8 devices, local
    a, b = restore_checkpoint(str(tmp_path / "one")), restore_checkpoint(workdir)
    assert int(b.step) == 3
    for x, y in zip(jax.tree.leaves((a.params, a.opt_state)), jax.tree.leaves((b.params, b.opt_state))):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    assert len(fileio.read_text(f"{workdir}/metrics.jsonl").splitlines()) == 3  # process 0 alone writes


def test_a_two_cell_study_on_a_gs_workdir_runs_shares_and_reports(gcs):
    s = importlib.import_module("configs.studies.duality").get_config("tiny")
    wd = f"{gcs.root}/studies/a"
    records = [study.run_cell(s, c, wd) for c in study.cells(s)]
    assert [r["name"] for r in records] == ["vicreg", "simclr_tuned"] and all(r["steps"] == 2 for r in records)
    assert sorted(fileio.listdir(f"{wd}/baselines")) == sorted(
        b["key"] + ".json" for b in records[0]["baselines"].values())
    text, got = study.report(s, wd)
    assert len(got) == 2 and "| vicreg | vicreg | 16 |" in text
    assert {"study.md", "study.json", "study.png"} <= set(fileio.listdir(wd))
    assert json.loads(fileio.read_text(f"{wd}/cells/vicreg/cell.json"))["probe"] == records[0]["probe"]
    other = importlib.import_module("configs.studies.duality").get_config("tiny")
    other.entries = [dict(name="vicreg_again", config="vicreg")]
    shared = study.run_cell(other, study.cells(other)[0], f"{gcs.root}/studies/b")  # found through the bucket
    assert shared["shared_from"] == "a/cells/vicreg" and shared["probe"] == records[0]["probe"]
    assert checkpoint.has_checkpoint(f"{wd}/cells/vicreg") and not checkpoint.has_checkpoint(f"{gcs.root}/studies/b")


def test_a_missing_bucket_is_bad_input_before_anything_is_written(gcs):
    r = subprocess.run(_cmd("gs://no-such-bucket/run"), cwd=ROOT, env=_env(gcs), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the bucket gs://no-such-bucket does not exist; create it" in r.stderr
    assert not fileio.exists("gs://no-such-bucket") and "training" not in r.stdout


def test_two_runs_racing_for_a_gs_lock_the_last_writer_keeps_it(gcs, monkeypatch):
    import time

    from duality import lock

    workdir = f"{gcs.root}/runs/race"
    other = dict(host="another-host", pid=1, start=time.time(), heartbeat=time.time())

    def the_other_run_writes_meanwhile(seconds):  # what a run started at the same moment does
        fileio.write_text(f"{workdir}/run.lock", json.dumps(other))

    monkeypatch.setattr(lock.time, "sleep", the_other_run_writes_meanwhile)
    with pytest.raises(lock.LockedError, match="host another-host, pid 1"):
        lock.Lock(workdir)
    assert json.loads(fileio.read_text(f"{workdir}/run.lock"))["host"] == "another-host"  # left to its holder
    monkeypatch.undo()
    fileio.remove(f"{workdir}/run.lock")
    held = lock.Lock(workdir)  # nobody racing: taken, and released at the end
    assert json.loads(fileio.read_text(f"{workdir}/run.lock"))["pid"] == os.getpid()
    held.release()
    assert not fileio.exists(f"{workdir}/run.lock")
