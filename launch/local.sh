#!/usr/bin/env bash
# The main job on this machine: sets up .venv/ if needed, then runs
# `python -m duality.main` with any arguments given here.
source "$(dirname "$0")/env.sh"
exec python -m duality.main "$@"
