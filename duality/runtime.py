"""Process-level settings for fast host execution: the C allocator and XLA:CPU's library fusions.

XLA:CPU gives each large array (and each step's scratch) freshly allocated
memory. glibc serves allocations above 32 MB with mmap and returns them to
the kernel on free, so the next step touches new pages again, and on a VM
every first touch of a 4 KiB page is a fault: writing a fresh 58 MB array
took 45-58 ms against 6 ms for a reused one (benchmarks/vs_pytorch.py's
machine, docs/performance.md). `tune_allocator` tells glibc to serve large
blocks from its heap and keep freed memory for reuse (mallopt: no mmap, no
trimming, one arena so memory freed by one XLA worker thread is reused by
another). The process's resident memory then stays at its peak instead of
shrinking between steps, which is what a training process reaches every
step anyway. It changes no numbers.

Called by the command-line entry points (train, study, probe); opt out with
DUALITY_ALLOCATOR=system. Elsewhere than glibc (macOS, musl) it does nothing.

`tune_xla_cpu` keeps XLA:CPU's YNNPACK library fusions for reductions only.
In jax 0.10.2 XLA:CPU hands convolutions and matrix products to YNNPACK
by default, which ran them on one core here: a 3x3 64->64 convolution at
batch 256 took 252 ms on two cores and 273 ms on one, and 116-122 ms when
XLA's own multi-threaded kernels ran it (docs/performance.md). Reductions
are the one kind YNNPACK does much faster (4 against 50 ms for a sum over a
51 MB activation), so they stay. On the 2-core machine the training step
became 7-8% faster (ResNet-18 too), the probe's feature extraction 1.5x;
results agree to float32 round-off. Other backends ignore the flag. Opt out
with DUALITY_XLA=default; a value of the flag already in XLA_FLAGS is kept.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
_done = None


def tune_allocator() -> bool:
    """Apply the settings once per process; True when glibc accepted them."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("DUALITY_ALLOCATOR", "tuned") == "system" or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return _done
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # M_TRIM_THRESHOLD -1 turns trimming off altogether (mallopt(3)). The largest positive value, 2**31 - 1,
    # is not enough: ResNet-18's step at batch 256 x 2 frees 2.27 GB at once, the heap's top then exceeds
    # 2 GiB, glibc hands it back, and the next step faulted 550,000 pages in again (11 s of sys time a step).
    ok = [mallopt(_M_MMAP_MAX, 0), mallopt(_M_TRIM_THRESHOLD, -1), mallopt(_M_ARENA_MAX, 1)]
    _done = all(r == 1 for r in ok)
    return _done


def tune_xla_cpu() -> bool:
    """Add `YNN_FLAG=reduce` to XLA_FLAGS; True when it is in effect for this process.

    XLA reads XLA_FLAGS once, when the first backend starts: called after
    that, it changes nothing and says so (False), unless the flag was already
    there.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if YNN_FLAG in flags:
        return f"{YNN_FLAG}=reduce" in flags
    if os.environ.get("DUALITY_XLA", "tuned") == "default":
        return False
    if _backend_started():
        print(f"duality.runtime: XLA's backend started before tune_xla_cpu(); {YNN_FLAG}=reduce not applied "
              "(call it first, or put the flag in XLA_FLAGS)", file=sys.stderr)
        return False
    os.environ["XLA_FLAGS"] = (flags + f" {YNN_FLAG}=reduce").strip()
    return True


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # a jax without that module: assume the worst
        return True
    return bool(getattr(xla_bridge, "_backends", {1: 1}))
