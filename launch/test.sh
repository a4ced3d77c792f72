#!/usr/bin/env bash
# The test suite: sets up .venv/ if needed, then runs pytest. Multi-device
# tests use 8 fake CPU devices (tests/conftest.py sets XLA_FLAGS). Test files
# are spread over one pytest-xdist worker per core (DUALITY_TEST_WORKERS to
# change; 0 runs in this process), each file whole on one worker.
#   bash launch/test.sh              the whole suite (what CI runs)
#   bash launch/test.sh --quick      the inner-loop tier: every test not marked slow (no training run,
#                                    no subprocess); pytest arguments may follow either form
source "$(dirname "$0")/env.sh"
MARK=()
if [ "${1:-}" = "--quick" ]; then
  shift
  MARK=(-m "not slow")
fi
exec python -m pytest -q tests -n "${DUALITY_TEST_WORKERS:-auto}" --dist loadfile "${MARK[@]}" "$@"
