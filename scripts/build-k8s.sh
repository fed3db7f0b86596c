#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl 1.20.2 from
# Debian's own `kubernetes` source package, for the test control plane.
# The build takes 6-10 minutes on 2 cores, so the binaries are cached outside
# the clone ($BERTH_K8S_CACHE, default ~/.cache/berth/k8s-1.20.2) and reused.
#
#   bash scripts/build-k8s.sh        # prints the cache directory on success
set -euo pipefail

CACHE=${BERTH_K8S_CACHE:-$HOME/.cache/berth/k8s-1.20.2}
BINS=(kube-apiserver kube-controller-manager kubectl)

have_all() { for b in "${BINS[@]}"; do [[ -x $CACHE/$b ]] || return 1; done; }
if have_all; then echo "$CACHE"; exit 0; fi

export DEBIAN_FRONTEND=noninteractive
# apt-get source needs a deb-src entry for bookworm main.
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/berth-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update >&2
fi
apt-get install -y --no-install-recommends golang-go rsync make dpkg-dev golang-github-modern-go-reflect2-dev >&2

work=$(mktemp -d /tmp/berth-k8s-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source kubernetes >&2
src=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[[ -n $src ]] || { echo "build-k8s: apt-get source kubernetes unpacked nothing" >&2; exit 1; }

# reflect2 1.0.1 (vendored) makes the apiserver crash with SIGSEGV in map
# iteration on the first custom-resource write under Go >= 1.18; Debian's
# 1.0.2 is API-compatible and fixed.
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"

export GOPATH=$work/gopath GOCACHE=$work/gocache
mkdir -p "$GOPATH/src/k8s.io"
ln -s "$src" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
CGO_ENABLED=0 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl" >&2

mkdir -p "$CACHE"
for b in "${BINS[@]}"; do
  out=$(find _output -type f -name "$b" -perm -u+x | head -n1)
  [[ -n $out ]] || { echo "build-k8s: $b was not built" >&2; exit 1; }
  install -m 0755 "$out" "$CACHE/$b.tmp" && mv -f "$CACHE/$b.tmp" "$CACHE/$b"
done
"$CACHE/kube-apiserver" --version >&2
echo "$CACHE"
