"""Test set-up: 8 fake CPU devices, and one compilation cache per session.

XLA reads the device flag when the backend starts, so it is set before jax is
imported anywhere in the session.

The suite compiles the same small programs many times: every trainer built in
a test jits its own step, and every CLI subprocess (kill -9 and restart,
SIGTERM, bad input, two processes) starts from nothing. JAX's persistent
compilation cache, in a directory made fresh for this session, turns all but
the first of each into a disk read (a 3-step CLI run: 38 s -> 10 s here).
The directory is new per session, so every program is still compiled once and
nothing leaks between sessions; subprocesses inherit it through the
environment. DUALITY_TEST_COMPILE_CACHE=0 turns it off.
"""
import atexit
import os
import shutil
import tempfile

_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
from duality import runtime  # noqa: E402  (imports no jax)

runtime.tune_xla_cpu()  # the XLA:CPU settings the entry points run with, so the tests see the same programs

if os.environ.get("DUALITY_TEST_COMPILE_CACHE", "1") != "0" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="duality-test-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: trains or starts processes; left out of the quick tier (bash launch/test.sh --quick)")
