#!/usr/bin/env bash
# Prepares a fresh Debian bookworm machine for berth's demo and tests:
#   - containernetworking-plugins (/usr/lib/cni/bridge, host-local, ...),
#     iproute2 and sqlite3, installed with apt only if missing;
#   - shellcheck, which `npm run lint` runs on every shell script;
#   - for the test's real node (scripts/testenv.sh with BERTH_TESTENV_NODE=1):
#     containerd and runc (the container runtime), conntrack and iptables
#     (kube-proxy), also only if missing. No service is started: the tests
#     run their own containerd with its own config;
#   - the npm dependencies (npm ci).
# Node 20 and npm must already be installed.
#
#   bash scripts/setup.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(containernetworking-plugins iproute2 sqlite3 shellcheck containerd runc conntrack iptables)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: ${PACKAGES[*]} already installed"
else
  SUDO=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
  fi
  echo "setup: installing ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

command -v node >/dev/null || { echo "setup: node (>= 20) is not installed" >&2; exit 1; }
echo "setup: npm ci"
npm ci

echo "setup: done. Next: npm run build, then npm run demo (as root) or npm test"
