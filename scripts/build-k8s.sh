#!/usr/bin/env bash
# Builds Kubernetes 1.20.2 from Debian's own `kubernetes` source package, for
# the test control plane and the test's real node:
#   kube-apiserver, kube-controller-manager, kubectl (control plane), and
#   with BERTH_K8S_NODE=1 also kube-scheduler, kubelet, kube-proxy (real
#   node), all in one `make WHAT=`, and the pause container's binary
#   (build/pause/linux/pause.c, gcc -static).
# The build takes 15-25 minutes on 2 cores, so the binaries are cached
# outside the clone ($BERTH_K8S_CACHE, default ~/.cache/berth/k8s-1.20.2),
# one file each, and reused: a cache that lacks some of them (e.g. one made
# before the node binaries were added) gets only the missing ones built.
#
#   bash scripts/build-k8s.sh        # prints the cache directory on success
set -euo pipefail

CACHE=${BERTH_K8S_CACHE:-$HOME/.cache/berth/k8s-1.20.2}
GO_BINS=(kube-apiserver kube-controller-manager kubectl)
# The real node's binaries only when asked (BERTH_K8S_NODE=1, as testenv.sh's
# real-node mode does): the test control plane alone does not need them.
NODE=${BERTH_K8S_NODE:-0}
((NODE)) && GO_BINS+=(kube-scheduler kubelet kube-proxy)

missing_go=()
for b in "${GO_BINS[@]}"; do [[ -x $CACHE/$b ]] || missing_go+=("$b"); done
need_pause=0
((NODE)) && [[ ! -x $CACHE/pause ]] && need_pause=1
if ((${#missing_go[@]} == 0 && need_pause == 0)); then echo "$CACHE"; exit 0; fi
echo "build-k8s: building ${missing_go[*]}$( ((need_pause)) && echo ' pause') into $CACHE" >&2

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
apt-get install -y --no-install-recommends golang-go rsync make dpkg-dev gcc libc6-dev golang-github-modern-go-reflect2-dev >&2

work=$(mktemp -d /tmp/berth-k8s-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source kubernetes >&2
src=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[[ -n $src ]] || { echo "build-k8s: apt-get source kubernetes unpacked nothing" >&2; exit 1; }
mkdir -p "$CACHE"

# The pause container: a static binary, so that its image needs nothing else.
if ((need_pause)); then
  pause_version=$(sed -n 's/^TAG[[:space:]]*[?:]*=[[:space:]]*//p' "$src/build/pause/Makefile" | head -n1)
  gcc -Os -Wall -Werror -static -DVERSION="v${pause_version:-unknown}-berth" \
    -o "$CACHE/pause.tmp" "$src/build/pause/linux/pause.c" >&2
  strip "$CACHE/pause.tmp" 2>/dev/null || true
  chmod 0755 "$CACHE/pause.tmp" && mv -f "$CACHE/pause.tmp" "$CACHE/pause"
fi

if ((${#missing_go[@]})); then
  # reflect2 1.0.1 (vendored) makes the apiserver crash with SIGSEGV in map
  # iteration on the first custom-resource write under Go >= 1.18; Debian's
  # 1.0.2 is API-compatible and fixed.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"

  export GOPATH=$work/gopath GOCACHE=$work/gocache
  mkdir -p "$GOPATH/src/k8s.io"
  ln -s "$src" "$GOPATH/src/k8s.io/kubernetes"
  cd "$GOPATH/src/k8s.io/kubernetes"
  what=()
  for b in "${missing_go[@]}"; do what+=("cmd/$b"); done
  CGO_ENABLED=0 make WHAT="${what[*]}" >&2

  for b in "${missing_go[@]}"; do
    out=$(find _output -type f -name "$b" -perm -u+x | head -n1)
    [[ -n $out ]] || { echo "build-k8s: $b was not built" >&2; exit 1; }
    install -m 0755 "$out" "$CACHE/$b.tmp" && mv -f "$CACHE/$b.tmp" "$CACHE/$b"
  done
  "$CACHE/kube-apiserver" --version >&2
fi
echo "$CACHE"
