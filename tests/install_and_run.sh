#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs every test.
# Usage: bash tests/install_and_run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: Chromium for the browser tests, Fashion-MNIST for the notebooks (offline data).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
[ -x /usr/bin/chromium ] || { echo "FATAL: /usr/bin/chromium is missing after install" >&2; exit 1; }

python3 -m pip install -q -e ".[test]"
python3 -m playwright --version

export NBWEIGHTS_QUICK=1
exec python3 -m pytest tests -q -rs "$@"
