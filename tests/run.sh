#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# Used as is by CI (.ci/run). Under CI=true a skipped test that is not a GPU test fails the run
# with its reason (tests/conftest.py), so every tool below must be here. GPU tests are collected
# and skipped where there is no CUDA device; the last lines count what ran per kind, e.g.
#   suite: unit 412 passed, ssh 20 passed, fleet 57 passed, gpu 9 skipped (no GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# command the tests run -> Debian package that has it
tools=(
  "debootstrap debootstrap"          # the fleet image (tests/fleet/fleet.py)
  "unshare util-linux" "nsenter util-linux" "setpriv util-linux" "chroot coreutils" "mount mount"
  "openssl openssl"                  # the fleet's password hashes (openssl passwd -6)
  "/usr/sbin/sshd openssh-server"    # the local sshd fixture (tests/sshd.py)
  "ssh-keygen openssh-client"
  "gpg gpg"                          # keys for apt_key / deb822_repository tests
  "apt-get apt" "dpkg-query dpkg"    # the apt / package module tests act on this machine
  "chromium chromium"                # the fleet page opened in a real browser (tests/unit/test_fleet_page.py)
)
need=()
for entry in "${tools[@]}"; do
  read -r tool pkg <<<"$entry"
  command -v "$tool" >/dev/null 2>&1 || need+=("$pkg")
done
# tests/compat and the Vault interop tests build ansible-core's venv (Debian's python3 needs python3-venv)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=("python3-venv")
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "tests/run.sh: missing ${need[*]} and cannot install them (needs root and apt-get)" >&2
    [ "${CI:-}" = true ] && exit 1
  else
    apt-get update -qq
    # shellcheck disable=SC2046
    apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
  fi
fi
# this checkout, with the test extras, unless it is already what python imports
here=$(python3 -c 'import os, provisioner, pytest, testinfra, numpy, matplotlib; print(os.path.dirname(os.path.dirname(provisioner.__file__)))' 2>/dev/null || true)
[ "$here" = "$PWD" ] || python3 -m pip install -q -e '.[test]'
start=$(date +%s)
status=0
python3 -m pytest -q "$@" || status=$?
echo "tests/run.sh: $(( $(date +%s) - start ))s"
exit "$status"
