"""Test set-up: 8 fake CPU devices for the multi-device checks.

XLA reads the flag when the backend starts, so it is set before jax is
imported anywhere in the session.
"""
import os

_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
