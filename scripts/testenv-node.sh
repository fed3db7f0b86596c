# shellcheck shell=bash
# The real node of scripts/testenv.sh (sourced by it; BERTH_TESTENV_NODE=1 at
# `up`): kube-scheduler, containerd, a kubelet and kube-proxy on this machine,
# all stopped again by `down`.
#
# - The API server listens on $NODE_API_ADDR (10.253.0.1) on an interface
#   of its own (a bridge without ports), which is also its advertise address (the `kubernetes` Service's
#   endpoint, kept by the lease endpoint reconciler) and is in its
#   certificate; a route sends 10.96.0.0/16 (the Service range) to that
#   interface, so the host's own connections to 10.96.0.1 reach kube-proxy's
#   DNAT whatever the host's default route is.
# - containerd 1.6 (Debian's) runs with its own config, root, state and socket
#   under $DIR, `restrict_oom_score_adj = true` (no CAP_SYS_RESOURCE here), the
#   pause image of scripts/build-images.sh as sandbox image, CNI from
#   /opt/cni/bin and /etc/cni/net.d.
# - containerd and the kubelet run in a private mount namespace (held by the
#   process `node-ns`) in which test directories under $DIR/node are
#   bind-mounted over the host paths a node writes: /opt/cni/bin,
#   /etc/cni/net.d, /var/lib/cni, /var/log/pods, /var/log/containers,
#   /run/containerd and /run/netns. What the DaemonSet writes to the host's
#   /opt/cni/bin lands in $DIR/node/opt-cni-bin; the host's own directories
#   are never written (an empty mount point that did not exist is created
#   and removed again by `down`).
# - The kubelet (node name $NODE_NAME) uses cgroupfs, no QoS cgroups, no
#   swap check, no eviction on a small disk, no image GC, and leaves iptables
#   to kube-proxy.
# - kube-proxy (iptables mode) makes the `kubernetes` Service reach the API
#   server from pods and from the host; `down` runs `kube-proxy --cleanup`
#   and puts back the sysctl it changes (net.ipv4.conf.all.route_localnet).
#
# The node has no CNI configuration until a test writes one into
# $DIR/node/etc-cni-net.d (the node's /etc/cni/net.d): until then the kubelet
# reports NetworkReady=false and runs host-network pods only.
#
# There is one real node per machine: the interface, the address, the
# kubelet's port 10250 on that address and kube-proxy's rules are
# machine-wide. A second `up` with BERTH_TESTENV_NODE=1 fails while one runs.

NODE_NAME=${BERTH_TESTENV_NODE_NAME:-berth-node}
NODE_IFACE=berthapi0
NODE_API_ADDR=10.253.0.1
NODE_SERVICE_CIDR=10.96.0.0/16
NODE_PAUSE_IMAGE=localhost/berth/pause:3.4
NODE_DAEMONS=(kube-scheduler node-ns containerd kubelet kube-proxy)
NODE_READY_TIMEOUT=120
# host path : directory under $DIR/node bind-mounted over it in the node's mount namespace
NODE_MOUNTS=(
  /opt/cni/bin:opt-cni-bin
  /etc/cni/net.d:etc-cni-net.d
  /var/lib/cni:var-lib-cni
  /var/log/pods:var-log-pods
  /var/log/containers:var-log-containers
  /run/containerd:run-containerd
  /run/netns:run-netns
)

# API_HOST is read by testenv.sh, which sources this file.
# shellcheck disable=SC2034
((NODE)) && API_HOST=$NODE_API_ADDR

node_ensure_prerequisites() {
  local missing=() b
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v iptables >/dev/null || missing+=(iptables)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
  for b in kube-scheduler kubelet kube-proxy pause; do
    [[ -x $K8S/$b ]] || die "$K8S/$b missing after build-k8s.sh"
  done
  [[ -x $ROOT/dist/berth ]] || die "dist/berth missing (the berth image is built from it): npm run build"
  [[ $EUID == 0 ]] || die "a real node needs root"
}

# node_prepare_host: the API server's address, and the mount points. Refuses if another real node runs.
node_prepare_host() {
  if ip link show "$NODE_IFACE" >/dev/null 2>&1; then
    die "interface $NODE_IFACE exists: another real-node testenv runs on this machine (BERTH_TESTENV_DIR of it: $(cat /run/berth-testenv-node 2>/dev/null || echo unknown))"
  fi
  # A bridge without ports as a dummy interface (this kernel may lack the dummy driver).
  ip link add "$NODE_IFACE" type bridge
  echo "$DIR" >/run/berth-testenv-node
  echo "$NODE_IFACE" >"$DIR/node-created-link"
  ip addr add "$NODE_API_ADDR/32" dev "$NODE_IFACE"
  ip link set "$NODE_IFACE" up
  ip route add "$NODE_SERVICE_CIDR" dev "$NODE_IFACE"
  cat /proc/sys/net/ipv4/conf/all/route_localnet >"$DIR/node-route_localnet"
  # No KUBE-* chain before: `down` may then remove those `kube-proxy --cleanup` leaves (its canaries).
  iptables-save 2>/dev/null | grep -q '^:KUBE-' || touch "$DIR/node-no-kube-chains-before"
  local m target d created=()
  for m in "${NODE_MOUNTS[@]}"; do
    target=${m%%:*}
    d=$target
    while [[ ! -e $d ]]; do
      created=("$d" "${created[@]}")
      d=$(dirname "$d")
    done
    mkdir -p "$target" "$DIR/node/${m#*:}"
  done
  # Deepest first, for `down`'s rmdir.
  ((${#created[@]})) && printf '%s\n' "${created[@]}" | sort -r -u >"$DIR/node-created-dirs"
  return 0
}

node_restore_host() {
  if [[ -f $DIR/node-created-dirs ]]; then
    local d
    while read -r d; do
      if [[ -n $d ]] && ! rmdir "$d" 2>/dev/null; then log "warning: could not remove $d (not empty?)"; fi
    done <"$DIR/node-created-dirs"
    rm -f "$DIR/node-created-dirs"
  fi
  if [[ -f $DIR/node-route_localnet ]]; then
    cat "$DIR/node-route_localnet" >/proc/sys/net/ipv4/conf/all/route_localnet
    rm -f "$DIR/node-route_localnet"
  fi
  if [[ -f $DIR/node-created-link ]]; then
    ip link del "$NODE_IFACE" 2>/dev/null || true
    rm -f "$DIR/node-created-link" /run/berth-testenv-node
  fi
}

# node_pick_ports USED...: KEY=VALUE lines for $DIR/env.
node_pick_ports() {
  local sched kubelet_healthz proxy_healthz proxy_metrics
  sched=$(free_port 10259 "$@")
  kubelet_healthz=$(free_port 10248 "$@" "$sched")
  proxy_healthz=$(free_port 10256 "$@" "$sched" "$kubelet_healthz")
  proxy_metrics=$(free_port 10249 "$@" "$sched" "$kubelet_healthz" "$proxy_healthz")
  cat <<EOF
SCHED_PORT=$sched
KUBELET_HEALTHZ_PORT=$kubelet_healthz
PROXY_HEALTHZ_PORT=$proxy_healthz
PROXY_METRICS_PORT=$proxy_metrics
EOF
}

# node_tokens: tokens.csv lines for the node's components (and files with the tokens).
node_tokens() {
  local c t
  for c in kube-scheduler kubelet kube-proxy; do
    t=$(openssl rand -hex 24)
    echo "$t" >"$DIR/$c.token"
    echo "$t,system:$c,system:$c,\"system:masters\""
  done
}

node_print_env() {
  cat <<EOF
export BERTH_TESTENV_NODE=1
export BERTH_NODE_NAME=$NODE_NAME
export BERTH_NODE_ROOT=$DIR/node
export BERTH_NODE_NS_PIDFILE=$DIR/node-ns.pid
export BERTH_CONTAINERD_SOCKET=$DIR/containerd.sock
export BERTH_CONTAINERD_LOG=$DIR/containerd.log
EOF
}

node_healthy() {
  local n
  for n in "${NODE_DAEMONS[@]}"; do pid_alive "$n" || return 1; done
  ctr --address "$DIR/containerd.sock" version >/dev/null 2>&1 || return 1
  curl -fsS --max-time 5 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" >/dev/null 2>&1
}

# node_exec CMD...: CMD in the node's mount namespace.
node_exec() { nsenter --target "$(<"$DIR/node-ns.pid")" --mount -- "$@"; }

node_containerd_config() {
  cat <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
[grpc]
  address = "$DIR/containerd.sock"
[ttrpc]
  address = "$DIR/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: without this runc fails every sandbox with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$DIR/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
EOF
}

node_kubeconfig() { # node_kubeconfig COMPONENT
  write_kubeconfig "$DIR/$1.kubeconfig" "system:$1" "$(<"$DIR/$1.token")"
}

node_ctr() { ctr --address "$DIR/containerd.sock" -n k8s.io "$@"; }

# node_start_scheduler: kube-scheduler, as the real node's pods need one.
node_start_scheduler() {
  start_proc kube-scheduler "$K8S/kube-scheduler" \
    --kubeconfig "$DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 \
    --secure-port "$SCHED_PORT" \
    --port 0 \
    --leader-elect=false \
    --logtostderr=true \
    --v=1
  wait_for kube-scheduler "$READY_TIMEOUT" curl -fsSk --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"
}

# node_start_mount_ns: the node's mount namespace, test directories over the host paths a node writes.
node_start_mount_ns() {
  local m binds=()
  for m in "${NODE_MOUNTS[@]}"; do binds+=("$DIR/node/${m#*:}" "${m%%:*}"); done
  # It sleeps under the name $DIR/node-ns, by which the test runner finds it if it were left.
  # The single quotes are meant: the inner bash expands its own arguments.
  # shellcheck disable=SC2016
  start_proc node-ns unshare --mount --propagation private -- bash -c '
    set -e
    dir=$1 ready=$2; shift 2
    while (($#)); do mount --bind "$1" "$2"; shift 2; done
    touch "$ready"
    exec -a "$dir/node-ns" sleep infinity' node-ns "$DIR" "$DIR/node-ns.ready" "${binds[@]}"
  wait_for node-ns 30 test -f "$DIR/node-ns.ready"
}

# node_start_containerd: in the node's mount namespace, with the CNI plugins the
# node configurations name and the images of scripts/build-images.sh.
node_start_containerd() {
  local c
  # CNI plugins the node configurations name (berth itself is installed by the DaemonSet).
  for c in bridge loopback host-local; do install -m 0755 "/usr/lib/cni/$c" "$DIR/node/opt-cni-bin/$c"; done

  node_containerd_config >"$DIR/containerd.toml"
  mkdir -p "$DIR/containerd"
  start_proc containerd nsenter --target "$(<"$DIR/node-ns.pid")" --mount -- containerd --config "$DIR/containerd.toml" --log-level info
  wait_for containerd "$READY_TIMEOUT" ctr --address "$DIR/containerd.sock" version
  bash "$ROOT/scripts/build-images.sh" --import "$DIR/containerd.sock" "$DIR/images" "$K8S/pause" ||
    fail_with_log containerd "building or importing the images failed"
}

# node_start_kubelet: in the node's mount namespace; returns once the Node object exists.
node_start_kubelet() {
  mkdir -p "$DIR/kubelet"
  start_proc kubelet nsenter --target "$(<"$DIR/node-ns.pid")" --mount -- "$K8S/kubelet" \
    --kubeconfig "$DIR/kubelet.kubeconfig" \
    --root-dir "$DIR/kubelet" \
    --cert-dir "$DIR/kubelet/pki" \
    --volume-plugin-dir "$DIR/kubelet/volume-plugins" \
    --container-runtime=remote \
    --container-runtime-endpoint "unix://$DIR/containerd.sock" \
    --cgroup-driver=cgroupfs \
    --cgroups-per-qos=false \
    --enforce-node-allocatable="" \
    --fail-swap-on=false \
    --pod-infra-container-image "$NODE_PAUSE_IMAGE" \
    --image-gc-high-threshold=100 \
    --image-gc-low-threshold=99 \
    --eviction-hard 'memory.available<1Mi,nodefs.available<1%,nodefs.inodesFree<1%,imagefs.available<1%' \
    --make-iptables-util-chains=false \
    --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_API_ADDR" \
    --address "$NODE_API_ADDR" \
    --read-only-port 0 \
    --healthz-bind-address 127.0.0.1 \
    --healthz-port "$KUBELET_HEALTHZ_PORT" \
    --cluster-domain cluster.local \
    --logtostderr=true \
    --v=1
  wait_for kubelet "$NODE_READY_TIMEOUT" curl -fsS --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for kubelet "$NODE_READY_TIMEOUT" kc get node "$NODE_NAME"
}

# node_start_proxy: kube-proxy (iptables mode); returns once the `kubernetes` Service answers from the host.
node_start_proxy() {
  start_proc kube-proxy "$K8S/kube-proxy" \
    --kubeconfig "$DIR/kube-proxy.kubeconfig" \
    --proxy-mode iptables \
    --hostname-override "$NODE_NAME" \
    --healthz-bind-address "127.0.0.1:$PROXY_HEALTHZ_PORT" \
    --metrics-bind-address "127.0.0.1:$PROXY_METRICS_PORT" \
    --conntrack-max-per-core 0 \
    --conntrack-tcp-timeout-established 0 \
    --conntrack-tcp-timeout-close-wait 0 \
    --logtostderr=true \
    --v=1
  # Its rules for the `kubernetes` Service, and the Service answering from the host.
  wait_for kube-proxy "$NODE_READY_TIMEOUT" node_service_answers
}

node_up() {
  local c
  for c in kube-scheduler kubelet kube-proxy; do node_kubeconfig "$c"; done
  node_start_scheduler
  node_start_mount_ns
  node_start_containerd
  node_start_kubelet
  node_start_proxy
  log "real node $NODE_NAME up (containerd $DIR/containerd.sock, kubelet, kube-proxy; API server $NODE_API_ADDR:$APISERVER_PORT, also as https://10.96.0.1)"
}

node_service_answers() {
  [[ $(curl -sS --max-time 3 --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $(<"$DIR/admin.token")" https://10.96.0.1/readyz 2>/dev/null) == ok ]]
}

# node_pids: every process id in /proc.
node_pids() {
  local d
  for d in /proc/[0-9]*; do
    d=${d#/proc/}
    if [[ $d =~ ^[0-9]+$ ]]; then echo "$d"; fi
  done
}

# node_shim_tree: pids of containerd's shims for our socket and every process below them.
node_shim_tree() {
  local pid argv shims=() all=() stat ppid
  for pid in $(node_pids); do
    argv=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || continue
    [[ $argv == *containerd-shim* && $argv == *"$DIR/containerd.sock"* ]] && shims+=("$pid")
  done
  ((${#shims[@]})) || return 0
  all=("${shims[@]}")
  local changed=1
  while ((changed)); do
    changed=0
    for pid in $(node_pids); do
      [[ " ${all[*]} " == *" $pid "* ]] && continue
      stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
      ppid=$(awk '{print $2}' <<<"${stat##*)}")
      if [[ " ${all[*]} " == *" $ppid "* ]]; then all+=("$pid"); changed=1; fi
    done
  done
  echo "${all[@]}"
}

node_stop() {
  local id i left
  # The kubelet first: it would restart what is stopped below.
  stop_proc kubelet
  if pid_alive containerd; then
    # Whatever pods are left (a test that ended early): their tasks killed and removed. The
    # pod network namespaces go with the mount namespace.
    for id in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    for ((i = 0; i < 50; i++)); do
      [[ -z $(node_ctr tasks ls -q 2>/dev/null) ]] && break
      for id in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks delete --force "$id" >/dev/null 2>&1 || true; done
      sleep 0.2
    done
    for id in $(node_ctr containers ls -q 2>/dev/null); do node_ctr containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  stop_proc containerd
  # Shims outlive containerd; so would their containers.
  left=$(node_shim_tree)
  if [[ -n $left ]]; then
    log "killing containerd shims and their processes left: $left"
    # shellcheck disable=SC2086
    kill -9 $left 2>/dev/null || true
  fi
  stop_proc node-ns
  stop_proc kube-proxy
  if [[ -n ${K8S:-} && -x $K8S/kube-proxy ]]; then
    "$K8S/kube-proxy" --cleanup --proxy-mode iptables >"$DIR/kube-proxy-cleanup.log" 2>&1 || true
  fi
  if [[ -f $DIR/node-no-kube-chains-before ]]; then
    local t c
    for t in filter nat mangle; do
      for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
        iptables -t "$t" -F "$c" 2>/dev/null || true
      done
      for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
        iptables -t "$t" -X "$c" 2>/dev/null || true
      done
    done
  fi
  stop_proc kube-scheduler
}
