#!/usr/bin/env bash
# N processes of one duality command on this machine, joined by JAX's
# distributed runtime on 127.0.0.1: the multi-host code path (each process
# reads its own rows of every batch, collectives cross processes, one
# multi-host Orbax checkpoint, logs from process 0) without a cluster.
#
#   launch/local_multiprocess.sh 2 --config=configs/vicreg.py:fashion_mnist --workdir=workdirs/vicreg_mp
#
# DEVICES_PER_PROCESS (default 4): fake CPU devices per process. PORT: the
# coordinator's port (default: a free one). PYTHON: the interpreter (default
# python). Process 0 writes to this terminal, process i to LOG_DIR/process_i.log
# (LOG_DIR defaults to a new temporary folder). SIGTERM/SIGINT reach every
# process, which agree on the step to checkpoint at; the exit code is the
# largest of theirs. 2 processes x 4 devices train exactly as 1 x 8
# (tests/test_multihost.py).
set -euo pipefail
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NUM_PROCESSES [duality.main flags...]" >&2; exit 2
fi
n=$1; shift
py=${PYTHON:-python}
port=${PORT:-$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
log_dir=${LOG_DIR:-$(mktemp -d -t duality_mp.XXXX)}
mkdir -p "$log_dir"
export JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-4}"
export DUALITY_COORDINATOR=127.0.0.1:$port DUALITY_NUM_PROCESSES=$n
pids=()
for ((i = 0; i < n; i++)); do
  if [ "$i" -eq 0 ]; then
    DUALITY_PROCESS_ID=$i "$py" -m duality.main "$@" &
  else
    DUALITY_PROCESS_ID=$i "$py" -m duality.main "$@" > "$log_dir/process_$i.log" 2>&1 &
  fi
  pids+=($!)
done
[ "$n" -gt 1 ] && echo "processes 1..$((n - 1)) log to $log_dir" >&2
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
rc=0
for pid in "${pids[@]}"; do
  while true; do
    set +e; wait "$pid"; r=$?; set -e
    # wait returns >128 when a trapped signal interrupts it: wait again for the real exit code
    if [ $r -gt 128 ] && kill -0 "$pid" 2>/dev/null; then continue; fi
    break
  done
  [ $r -gt $rc ] && rc=$r
done
exit $rc
