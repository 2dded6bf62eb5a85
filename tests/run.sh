#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# Used as is by CI (.ci/run). GPU tests are skipped here (no GPU); run them on a GPU host
# with `python -m pytest -m gpu tests/gpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=""
  for pkg in debootstrap openssh-server openssh-client python3-venv; do  # venv: tests/compat's ansible-core
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
  done
  if [ -n "$need" ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
fi
python3 -m pip install -q -e '.[test]'
python3 -m pytest -m "not gpu" -q "$@"
