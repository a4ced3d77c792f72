"""Multi-host start-up and the host-level agreements a multi-controller run needs.

JAX runs one Python process per host ("multi-controller"): every process
executes the same program on its own devices, and `jax.distributed` connects
them so that `jax.devices()` is the global list and collectives cross hosts.
`initialize` must run before anything asks JAX for a device.

How the processes find each other, in the order tried:
  1. explicit: coordinator address, process count and id (flags, or the
     DUALITY_COORDINATOR / DUALITY_NUM_PROCESSES / DUALITY_PROCESS_ID
     environment variables, which launch/local_multiprocess.sh sets);
  2. `mode="on"`: JAX's own cluster detection (TPU VM slices, SLURM, Open MPI,
     Kubernetes), which needs no arguments;
  3. `mode="auto"` (the default): the same detection, but only where a
     multi-process job is visible in the environment (SLURM with more than one
     task, Open MPI with more than one rank, a TPU slice with more than one
     worker), so a laptop or a single GPU box never waits for a coordinator.
"""
from __future__ import annotations

import os

import numpy as np

ENV = ("DUALITY_COORDINATOR", "DUALITY_NUM_PROCESSES", "DUALITY_PROCESS_ID")


def _int_env(name: str) -> int:
    try:
        return int(os.environ.get(name, "1").split("(")[0])  # SLURM_TASKS_PER_NODE may read "4(x2)"
    except ValueError:
        return 1


def cluster_in_environment() -> str | None:
    """The multi-process job visible in the environment, if any (for mode="auto")."""
    if "SLURM_JOB_ID" in os.environ and _int_env("SLURM_NTASKS") > 1:
        return "SLURM"
    if _int_env("OMPI_COMM_WORLD_SIZE") > 1:
        return "Open MPI"
    if len([h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
        return "TPU slice"
    return None


def initialize(mode: str = "auto", coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> str:
    """Connect this process to the others of its job; returns a line saying how.

    mode: "auto" (see the module docstring), "on" (always call
    jax.distributed.initialize, with JAX's cluster detection filling in what
    is not given) or "off" (one process; explicit settings are an error).
    """
    import jax

    env = [os.environ.get(k) for k in ENV]
    coordinator = coordinator or env[0]
    num_processes = num_processes if num_processes is not None else (int(env[1]) if env[1] else None)
    process_id = process_id if process_id is not None else (int(env[2]) if env[2] else None)
    explicit = [coordinator, num_processes, process_id]
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"--distributed={mode!r}: choose 'auto', 'on' or 'off'")
    if mode == "off":
        if any(v is not None for v in explicit):
            raise ValueError("--distributed=off with a coordinator, process count or process id: drop those "
                             "settings (and the DUALITY_* environment variables) or use --distributed=auto")
        return "single process"
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise ValueError("a multi-process launch needs all three of --coordinator_address, --num_processes "
                             f"and --process_id (got {coordinator!r}, {num_processes!r}, {process_id!r})")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"--process_id={process_id} is outside 0..{num_processes - 1}")
        jax.distributed.initialize(coordinator, num_processes, process_id)
        how = f"explicit coordinator {coordinator}"
    elif mode == "on" or cluster_in_environment():
        jax.distributed.initialize()
        how = f"detected {cluster_in_environment() or 'cluster'}"
    else:
        return "single process"
    return (f"process {jax.process_index()} of {jax.process_count()} ({how}): {jax.local_device_count()} local / "
            f"{jax.device_count()} global {jax.default_backend()} devices")


def any_process(flag: bool) -> bool:
    """True on every process if it is True on any (e.g. a SIGTERM that reached only some hosts).

    A host-level all-gather, so every process must call it at the same point
    of the loop; with one process it costs nothing.
    """
    import jax

    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))
