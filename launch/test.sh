#!/usr/bin/env bash
# The test suite: sets up .venv/ if needed, then runs pytest. Multi-device
# tests use 8 fake CPU devices (tests/conftest.py sets XLA_FLAGS).
#   bash launch/test.sh              the whole suite (what CI runs)
#   bash launch/test.sh --quick      the inner-loop tier: everything not marked slow (no training runs,
#                                    no subprocesses); pytest arguments may follow either form
source "$(dirname "$0")/env.sh"
if [ "${1:-}" = "--quick" ]; then
  shift
  exec python -m pytest -q tests -m "not slow" "$@"
fi
exec python -m pytest -q tests "$@"
