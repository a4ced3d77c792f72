#!/usr/bin/env bash
# Pretraining on a Cloud TPU VM slice: create (or reuse) the slice, copy this
# checkout to every worker, install, run the same command on all workers
# (JAX's distributed runtime detects the slice: duality/distributed.py), and
# delete the slice at the end unless KEEP=1.
#
#   TPU_NAME=duality-v4-32 ZONE=us-central2-b ACCELERATOR=v4-32 \
#     launch/tpu_pod.sh --config=configs/vicreg.py:imagenet --workdir=gs://BUCKET/runs/vicreg_in1k
#
# The workdir should be a gs:// path (every worker writes its shards of the
# checkpoint there; the data set's TFDS_DATA_DIR likewise). A preempted
# slice: run the same command again; it resumes from the newest checkpoint.
# Settings (environment): TPU_NAME, ZONE, ACCELERATOR, RUNTIME (TPU VM
# software version), PROJECT (gcloud's default if unset), SPOT=1 for spot
# capacity, KEEP=1 to keep the slice, TFDS_DATA_DIR.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${ACCELERATOR:=v4-8}" "${RUNTIME:=tpu-ubuntu2204-base}"
if [ $# -eq 0 ]; then
  echo "usage: TPU_NAME=... ZONE=... $0 --config=configs/<method>.py:imagenet --workdir=gs://..." >&2; exit 2
fi
command -v gcloud >/dev/null || { echo "gcloud not found: install the Google Cloud SDK" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
project=(); [ -n "${PROJECT:-}" ] && project=(--project="$PROJECT")
tpu=(gcloud compute tpus tpu-vm "${project[@]}")

if ! "${tpu[@]}" describe "$TPU_NAME" --zone="$ZONE" >/dev/null 2>&1; then
  spot=(); [ "${SPOT:-0}" = 1 ] && spot=(--spot)
  echo "[tpu] creating $TPU_NAME ($ACCELERATOR, $RUNTIME) in $ZONE" >&2
  "${tpu[@]}" create "$TPU_NAME" --zone="$ZONE" --accelerator-type="$ACCELERATOR" --version="$RUNTIME" "${spot[@]}"
fi
if [ "${KEEP:-0}" != 1 ]; then
  trap 'echo "[tpu] deleting $TPU_NAME" >&2; "${tpu[@]}" delete "$TPU_NAME" --zone="$ZONE" --quiet' EXIT
fi

echo "[tpu] copying $ROOT to every worker" >&2
tarball="$(mktemp -t duality.XXXX).tar.gz"
git -C "$ROOT" archive --format=tar.gz -o "$tarball" HEAD
"${tpu[@]}" scp "$tarball" "$TPU_NAME":duality.tar.gz --zone="$ZONE" --worker=all
rm -f "$tarball"

# Every worker: unpack, install once (jax with its TPU runtime), run the same
# command. Quoted arguments survive the trip through ssh.
args="$(printf '%q ' "$@")"
"${tpu[@]}" ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  set -euo pipefail
  mkdir -p duality && tar -xzf duality.tar.gz -C duality && cd duality
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet -e . 'jax[tpu]==0.10.2'
  ${TFDS_DATA_DIR:+export TFDS_DATA_DIR='$TFDS_DATA_DIR'}
  .venv/bin/python -m duality.main --distributed=on $args"
