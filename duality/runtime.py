"""Process-level settings for fast host execution: the C allocator.

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
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
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
    ok = [mallopt(_M_MMAP_MAX, 0), mallopt(_M_TRIM_THRESHOLD, 2**31 - 1), mallopt(_M_ARENA_MAX, 1)]
    _done = all(r == 1 for r in ok)
    return _done
