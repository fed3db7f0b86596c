#!/usr/bin/env bash
# Assembles the container images the test's real node runs, without Docker and
# without a registry, as docker-archive tars (`docker save` format, which
# `ctr images import` and `docker load` both read):
#
#   berth.tar     ghcr.io/berth-ipam/berth:0.5.0   dist/berth as fixtures/deploy/Dockerfile
#                 describes: ENTRYPOINT /usr/local/bin/berth, CMD --help, on a glibc base
#   pause.tar     localhost/berth/pause:3.4        the sandbox ("pause") image
#   workload.tar  docker.io/library/nginx:latest   a stand-in for the seed's `image: nginx`:
#                 the pause binary as its entrypoint (a container that just runs)
#
# The Dockerfile's base, gcr.io/distroless/cc-debian12, cannot be pulled
# offline; the base layer built here is its equivalent for dist/berth: the
# libraries `ldd dist/berth` lists and the dynamic loader, at the paths ldd
# prints, plus /etc/passwd and /etc/group (root, nonroot 65532) and /tmp. The
# published image is built from the Dockerfile itself.
#
#   bash scripts/build-images.sh OUT_DIR [PAUSE_BINARY]
#     PAUSE_BINARY defaults to the one scripts/build-k8s.sh caches.
#   bash scripts/build-images.sh --import CONTAINERD_SOCKET OUT_DIR [PAUSE_BINARY]
#     also imports the three into containerd's k8s.io namespace.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
import_socket=""
if [[ ${1:-} == --import ]]; then import_socket=$2; shift 2; fi
OUT=$(realpath -m "${1:?usage: build-images.sh [--import SOCKET] OUT_DIR [PAUSE_BINARY]}")
PAUSE=${2:-${BERTH_K8S_CACHE:-$HOME/.cache/berth/k8s-1.20.2}/pause}

BERTH_IMAGE=ghcr.io/berth-ipam/berth:0.5.0
PAUSE_IMAGE=localhost/berth/pause:3.4
WORKLOAD_IMAGE=docker.io/library/nginx:latest

die() { echo "build-images: error: $*" >&2; exit 1; }
[[ -x $ROOT/dist/berth ]] || die "dist/berth missing: npm run build"
[[ -x $PAUSE ]] || die "$PAUSE missing: bash scripts/build-k8s.sh builds it"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$PAUSE" || die "$PAUSE is not a static binary"

mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# layer ROOTFS_DIR LAYER_TAR: a reproducible tar of the directory; prints its sha256 (the diff_id).
layer() {
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu -C "$1" -cf "$2" .
  sha256sum "$2" | cut -d' ' -f1
}

# archive OUT_TAR REPO_TAG CONFIG_EXTRA LAYER_DIR...: a docker-archive with one layer per directory.
# CONFIG_EXTRA: the JSON members of the image's "config" object (Entrypoint, Cmd, ...).
archive() {
  local out=$1 tag=$2 extra=$3; shift 3
  local a=$work/archive diffs=() layers=() d i=0 id
  rm -rf "$a" && mkdir -p "$a"
  for d in "$@"; do
    i=$((i + 1))
    mkdir -p "$a/l$i"
    id=$(layer "$d" "$a/l$i/layer.tar")
    mv "$a/l$i" "$a/$id"
    diffs+=("\"sha256:$id\"")
    layers+=("\"$id/layer.tar\"")
  done
  local config
  config=$(printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],%s},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$extra" "$(IFS=,; echo "${diffs[*]}")")
  local cid
  cid=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  printf '%s' "$config" >"$a/$cid.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]' "$cid" "$tag" "$(IFS=,; echo "${layers[*]}")" >"$a/manifest.json"
  # Members named without "./", as `docker save` writes them.
  (cd "$a" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$out.tmp" -- *)
  mv -f "$out.tmp" "$out"
  echo "build-images: $out ($tag, config sha256:$cid)" >&2
}

# pause and the workload stand-in: the static pause binary alone.
mkdir -p "$work/pause-root"
install -m 0755 "$PAUSE" "$work/pause-root/pause"
archive "$OUT/pause.tar" "$PAUSE_IMAGE" '"Entrypoint":["/pause"]' "$work/pause-root"
archive "$OUT/workload.tar" "$WORKLOAD_IMAGE" '"Entrypoint":["/pause"]' "$work/pause-root"

# berth: the base layer (distroless/cc-debian12's part that dist/berth uses), then the binary.
base=$work/base
mkdir -p "$base/etc" "$base/tmp" "$base/usr/local/bin"
chmod 1777 "$base/tmp"
libs=$(ldd "$ROOT/dist/berth" | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}')
[[ -n $libs ]] || die "ldd dist/berth listed no libraries"
for lib in $libs; do
  [[ -f $lib ]] || die "ldd dist/berth: $lib not found"
  mkdir -p "$base$(dirname "$lib")"
  cp -L "$lib" "$base$lib"
done
cat >"$base/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PW
cat >"$base/etc/group" <<'GR'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GR
printf 'hosts: files dns\n' >"$base/etc/nsswitch.conf"
app=$work/app
mkdir -p "$app/usr/local/bin"
install -m 0755 "$ROOT/dist/berth" "$app/usr/local/bin/berth"
archive "$OUT/berth.tar" "$BERTH_IMAGE" \
  '"Entrypoint":["/usr/local/bin/berth"],"Cmd":["--help"],"Labels":{"org.opencontainers.image.title":"berth","org.opencontainers.image.version":"0.5.0"}' \
  "$base" "$app"

if [[ -n $import_socket ]]; then
  for t in pause workload berth; do
    ctr --address "$import_socket" -n k8s.io images import "$OUT/$t.tar" >&2 || die "ctr images import $OUT/$t.tar failed"
  done
fi
