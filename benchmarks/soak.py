"""Soak: one run under many random faults must end where an uninterrupted run ends, bit for bit.

  python benchmarks/soak.py                       # 20 faults into a 60-step tiny run on 2 CPU devices
  python benchmarks/soak.py --faults=50 --steps=120 --config=configs/byol.py:fashion_mnist
  python benchmarks/soak.py --gcs                 # the faulted run on gs://, a GCS server on 127.0.0.1

Starts the README's CLI on the tiny scale (configs/base.TINY: synthetic images, small
convnet, a checkpoint every `--checkpoint_every` steps) and, until `--faults` faults
have been injected, lets each attempt run for a random time (from the first
instant of start-up to several steps in), then sends it SIGKILL or SIGTERM at
random and starts it again. The run then finishes, and its final parameters
and optimiser state are compared with an uninterrupted run of the same
command. Prints each fault (signal, the step the attempt had logged, the step
the next attempt resumed from) and the totals: faults survived, steps
replayed, whether the final state is identical and whether metrics.jsonl
holds every step exactly once. `--gcs` puts the faulted run's workdir on gs://
(tests/gcs_emulator.py: a kill -9 can cut an upload, not only a local write).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configs import base  # noqa: E402


def command(config: str, workdir: str, steps: int, every: int) -> list[str]:
    return [sys.executable, "-m", "duality.main", f"--config={config}", f"--workdir={workdir}", *base.tiny_flags(),
            f"--config.train.steps={steps}", f"--config.train.checkpoint_every={every}",
            "--config.eval.linear_probe=False"]


def _env(devices: int) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
                PYTHONUNBUFFERED="1")


def _attempt(cmd, env, rng, max_wait: float):
    """Start one attempt, fault it after a random time: (signal, first and last step it logged, exit code, log)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)

    def drain() -> str:
        chunks = []
        while True:
            try:
                b = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")

    deadline, text = time.time() + rng.uniform(0.0, max_wait), ""
    while time.time() < deadline and proc.poll() is None:
        text += drain()
        time.sleep(0.05)
    sig = None
    if proc.poll() is None:
        sig = signal.SIGKILL if rng.random() < 0.5 else signal.SIGTERM
        proc.send_signal(sig)
    proc.wait(timeout=300)
    os.set_blocking(fd, True)
    text += proc.stdout.read().decode(errors="replace")
    steps = [int(s) for s in re.findall(r"^step (\d+)/", text, re.M)]
    return sig, min(steps, default=None), max(steps, default=None), proc.returncode, text


def soak(config: str, faults: int, steps: int, every: int, devices: int, seed: int, workdir: str,
         max_wait: float | None = None, remote: str | None = None) -> dict:
    """`workdir`: local scratch for the uninterrupted run (and the faulted one unless `remote` names a
    remote folder for it). `max_wait`: the longest an attempt runs before its fault (default: as long as the
    uninterrupted run took, so faults land across start-up, compilation and steps in proportion)."""
    from duality import pretrained

    rng = np.random.default_rng(seed)
    env = _env(devices)
    if "JAX_COMPILATION_CACHE_DIR" not in env:  # as on a cluster: a restart reads its programs from the cache
        env.update(JAX_COMPILATION_CACHE_DIR=os.path.join(workdir, "jax-cache"),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    straight = os.path.join(workdir, "straight")
    t = time.time()
    r = subprocess.run(command(config, straight, steps, every), cwd=ROOT, env=env, capture_output=True, text=True)
    max_wait = max_wait or time.time() - t
    if r.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    from duality import fileio

    faulted = fileio.join(remote or workdir, "faulted")
    cmd = command(config, faulted, steps, every)
    log, injected, replayed, last_seen, t0 = [], 0, 0, 0, time.time()
    while injected < faults:
        sig, first, seen, code, text = _attempt(cmd, env, rng, max_wait)
        if first is not None:  # it ran steps: those from `first` up to what the last attempt logged were replayed
            replayed += max(0, last_seen - (first - 1))
            last_seen = seen
        if sig is None or seen == steps:  # it finished before the fault: start over in a fresh faulted workdir
            if sig is None and code != 0:
                raise RuntimeError(f"an attempt failed by itself (exit {code}):\n{text[-3000:]}")
            fileio.rmtree(faulted)
            last_seen = 0
            continue
        injected += 1
        log.append((injected, signal.Signals(sig).name, first, seen, code))
        ran = f"steps {first}-{seen}" if first is not None else "no step (start-up or compilation)"
        print(f"fault {injected:3d}: {signal.Signals(sig).name:<7} after {ran}; exit {code}", flush=True)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"the final attempt failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    first = min((int(s) for s in re.findall(r"^step (\d+)/", r.stdout, re.M)), default=None)
    replayed += max(0, last_seen - (first - 1)) if first is not None else 0
    a, _ = pretrained.restore(straight)
    b, _ = pretrained.restore(faulted)
    import jax

    same = all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    rows = [int(re.match(r'{"step": (\d+)', line).group(1))
            for line in fileio.read_text(fileio.join(faulted, "metrics.jsonl")).splitlines() if line.strip()]
    return dict(in_steps=sum(1 for f in log if f[2] is not None), max_wait=max_wait, metrics_once=rows == list(range(1, steps + 1)), workdir=faulted,
                faults=injected, kills=sum(1 for f in log if f[1] == "SIGKILL"),
                terms=sum(1 for f in log if f[1] == "SIGTERM"), steps=steps, replayed=replayed, identical=same,
                bad_exits=[f for f in log if f[1] == "SIGTERM" and f[4] != 0], seconds=time.time() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/vicreg.py:fashion_mnist")
    p.add_argument("--faults", type=int, default=20)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--checkpoint_every", type=int, default=5)
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_wait", type=float, default=None, help="longest time an attempt runs before its fault, s "
                   "(default: the uninterrupted run's time)")
    p.add_argument("--gcs", action="store_true", help="the faulted run on gs:// (a GCS server on 127.0.0.1)")
    a = p.parse_args()
    emulator = None
    if a.gcs:
        from tests.gcs_emulator import BUCKET, Emulator

        emulator = Emulator()
        os.environ.update(emulator.env)  # the attempts inherit it; this process restores the result
    try:
        with tempfile.TemporaryDirectory(prefix="duality-soak-") as wd:
            r = soak(a.config, a.faults, a.steps, a.checkpoint_every, a.devices, a.seed, wd, a.max_wait,
                     remote=f"gs://{BUCKET}/soak" if a.gcs else None)
    finally:
        if emulator:
            emulator.stop()
    print(f"\n{r['faults']} faults ({r['kills']} SIGKILL, {r['terms']} SIGTERM; {r['in_steps']} while steps ran, "
          f"the others in start-up; each after 0-{r['max_wait']:.0f} s) into one {r['steps']}-step run, "
          f"{r['seconds']:.0f} s: {r['replayed']} steps replayed; SIGTERM exits other than 0: "
          f"{len(r['bad_exits'])}; final parameters and optimiser state identical to an uninterrupted run: "
          f"{r['identical']}; metrics.jsonl holds each step once: {r['metrics_once']} ({r['workdir']})")


if __name__ == "__main__":
    main()
