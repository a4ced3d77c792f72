#!/usr/bin/env bash
# The main job on this machine: sets up .venv/ (and the offline Fashion-MNIST)
# if needed, then runs `python -m duality.main`. With no arguments: the
# default pretraining (VICReg, small convnet, Fashion-MNIST), then a linear
# probe of the frozen encoder beside the raw-pixel and random-init baselines.
# Re-running resumes (or, when finished, only re-evaluates) the same workdir.
source "$(dirname "$0")/env.sh"
if [ $# -eq 0 ]; then
  set -- --config=configs/vicreg.py:fashion_mnist --workdir=workdirs/vicreg_fashion_mnist
fi
exec python -m duality.main "$@"
