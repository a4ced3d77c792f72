#!/usr/bin/env bash
# The test suite: sets up .venv/ if needed, then runs pytest. Multi-device
# tests use 8 fake CPU devices (tests/conftest.py sets XLA_FLAGS).
source "$(dirname "$0")/env.sh"
exec python -m pytest -q tests "$@"
