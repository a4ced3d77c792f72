# Sourced by the launch scripts: make (once) and activate the project's
# virtual environment in .venv/, installing duality and its test extra.
# Re-installs only when setup.py changes, so repeated runs start at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DUALITY_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "duality needs Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.duality-installed"
WANT="$(cat "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[setup] installing duality and its dependencies (first run: a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test,cpu]" >&2
  echo "$WANT" > "$STAMP"
fi
# The embedded default data set: Fashion-MNIST from Debian's package (offline
# after install). Installed here when missing and we may use apt-get.
FMNIST_DIR="${DUALITY_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Fashion-MNIST (Debian package dataset-fashion-mnist)" >&2
    $SUDO apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >&2 \
      || echo "[setup] could not install dataset-fashion-mnist; see README (data)" >&2
  else
    echo "[setup] Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or set DUALITY_FASHION_MNIST_DIR" >&2
  fi
fi
# g++, to build the CPU convolutions against the `cpu` extra's oneDNN on first use (duality/models/onednn;
# without it the models keep XLA's own, 1.5x slower, convolutions). Best effort.
if ! command -v g++ >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null; then
    echo "[setup] installing g++ (for the oneDNN convolutions)" >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq g++ >&2 \
      || { $SUDO apt-get update -qq >&2 || true; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq g++ >&2; } \
      || echo "[setup] could not install g++: CPU convolutions stay XLA's (slower)" >&2
  fi
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
cd "$ROOT"
