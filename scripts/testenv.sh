#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Test control plane for cluster mode: etcd + kube-apiserver +
# kube-controller-manager 1.20.2 on 127.0.0.1, no kubelet, no scheduler.
#
#   eval "$(bash scripts/testenv.sh up)"   # start (idempotent); prints exports
#   bash scripts/testenv.sh status         # exit 0 if healthy
#   bash scripts/testenv.sh down           # stop and remove the state dir
#   bash scripts/testenv.sh restart-apiserver  # stop kube-apiserver only, start it
#                                          # again with the same flags, wait for /readyz
#
# There is no kubelet: a heartbeat process (started by `up`, stopped by
# `down`) sets each node's Ready condition to True with a fresh
# lastHeartbeatTime every 10 s, as a kubelet would. A test makes a node not
# Ready by listing its name in $DIR/heartbeat-paused (one per line; the
# heartbeat skips it) and patching its Ready condition itself.
#
# Environment:
#   BERTH_TESTENV_DIR   state directory (default /tmp/berth-testenv)
#   BERTH_TESTENV_PORT  apiserver port (default 6443, or a free one if taken)
#   BERTH_K8S_CACHE     where scripts/build-k8s.sh caches the binaries
#
# stdout carries only the `export ...` lines of `up`; everything else goes to
# stderr. Every process listens on 127.0.0.1 only; no traffic leaves the host.
# The Service CIDR (10.96.0.0/16) is bookkeeping only and is never routed.
#
# A real node instead (BERTH_TESTENV_NODE=1 at `up`; remembered in $DIR/env):
# no simulated nodes and no heartbeat, but kube-scheduler, containerd, a
# kubelet and kube-proxy (iptables mode) on this machine, and the API server
# on an address pods can route to. See scripts/testenv-node.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${BERTH_TESTENV_DIR:-/tmp/berth-testenv}
DIR=${DIR%/}
# Where the API server listens and what the kubeconfigs name: 127.0.0.1, or
# with a real node the address of scripts/testenv-node.sh (from $DIR/env once up).
NODE=${BERTH_TESTENV_NODE:-0}
API_HOST=127.0.0.1
READY_TIMEOUT=60
TOKEN_TIMEOUT=30

log() { echo "testenv: $*" >&2; }
die() { echo "testenv: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

port_busy() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

free_port() { # free_port PREFERRED [EXCLUDE...]
  local p=$1; shift
  local ex=" $* "
  while port_busy "$p" || [[ $ex == *" $p "* ]]; do
    p=$((p + 1))
    ((p < 65000)) || die "no free port found"
  done
  echo "$p"
}

pid_alive() { # pid_alive NAME
  local f=$DIR/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  # A daemon that died after this script exited may linger as a zombie.
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

stop_proc() { # stop_proc NAME : SIGTERM, then SIGKILL after 10 s
  local f=$DIR/$1.pid pid i
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$1 (pid $pid) ignored SIGTERM; killing"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

start_proc() { # start_proc NAME CMD... : detached, logs to $DIR/NAME.log
  local name=$1; shift
  # setsid: own session, so it outlives this script and its terminal. Run
  # from a background subshell, it is not a group leader and execs in place,
  # so $! is the daemon's own pid. 9>&-: the daemon must not inherit the lock.
  setsid nohup "$@" >"$DIR/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$DIR/$name.pid"
  log "started $name (pid $!, log $DIR/$name.log)"
}

fail_with_log() { # fail_with_log NAME MESSAGE
  echo "testenv: error: $2" >&2
  if [[ -f $DIR/$1.log ]]; then
    echo "---- last 30 lines of $DIR/$1.log ----" >&2
    tail -n 30 "$DIR/$1.log" >&2
    echo "----" >&2
  fi
  exit 1
}

load_env() { # reads ports/paths written by a previous `up`
  [[ -f $DIR/env ]] || return 1
  # shellcheck disable=SC1091
  source "$DIR/env"
}

# The real node's part (functions node_*).
# shellcheck source=testenv-node.sh
source "$ROOT/scripts/testenv-node.sh"

admin_curl() { # admin_curl PATH [curl args...]
  local path=$1; shift
  curl -sS --max-time 5 --cacert "$DIR/pki/ca.crt" \
    -H "Authorization: Bearer $(<"$DIR/admin.token")" "$@" \
    "https://$API_HOST:$APISERVER_PORT$path"
}

# ---------------------------------------------------------------- heartbeat

HEARTBEAT_SECONDS=10

# beat NODE FIRST: Ready=True with a fresh lastHeartbeatTime (and lastTransitionTime when FIRST=1).
beat() {
  local now transition=""
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  [[ $2 == 1 ]] && transition=",\"lastTransitionTime\":\"$now\""
  admin_curl "/api/v1/nodes/$1/status" -o /dev/null -w '%{http_code}' -X PATCH \
    -H 'Content-Type: application/strategic-merge-patch+json' \
    --data "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"berth testenv heartbeat\",\"lastHeartbeatTime\":\"$now\"$transition}]}}" 2>/dev/null
}

# The heartbeat process: runs until the control plane's state dir is gone or it is stopped.
heartbeat_loop() {
  load_env || die "heartbeat: no $DIR/env"
  declare -A beating=()
  local n code
  while [[ -f $DIR/env ]]; do
    for n in node1 node2 node3; do
      if [[ -f $DIR/heartbeat-paused ]] && grep -qx "$n" "$DIR/heartbeat-paused"; then
        beating[$n]=0
        continue
      fi
      code=$(beat "$n" "$([[ ${beating[$n]:-0} == 1 ]] && echo 0 || echo 1)") || code=000
      if [[ $code == 200 ]]; then beating[$n]=1; else beating[$n]=0; fi
    done
    sleep "$HEARTBEAT_SECONDS"
  done
}

start_heartbeat() {
  pid_alive heartbeat && return 0
  start_proc heartbeat env BERTH_TESTENV_DIR="$DIR" bash "$ROOT/scripts/testenv.sh" heartbeat
  # The first beat makes the nodes Ready before anyone uses them.
  local deadline=$((SECONDS + 15)) n
  for n in node1 node2 node3; do
    until [[ $(admin_curl "/api/v1/nodes/$n" 2>/dev/null | grep -c '"lastHeartbeatTime"') -gt 0 ]]; do
      pid_alive heartbeat || fail_with_log heartbeat "the node heartbeat exited"
      ((SECONDS < deadline)) || fail_with_log heartbeat "node $n not Ready after 15s"
      sleep 0.25
    done
  done
}

healthy() {
  load_env 2>/dev/null || return 1
  pid_alive etcd && pid_alive kube-apiserver && pid_alive kube-controller-manager || return 1
  if ((NODE)); then node_healthy || return 1; fi
  [[ -f $DIR/admin.kubeconfig && -f $DIR/berth.kubeconfig && -f $DIR/ready ]] || return 1
  [[ $(admin_curl /readyz 2>/dev/null) == ok ]] || return 1
  curl -fsSk --max-time 5 "https://127.0.0.1:$KCM_PORT/healthz" >/dev/null 2>&1
}

kc() { "$KUBECTL" --kubeconfig "$DIR/admin.kubeconfig" --cache-dir "$DIR/kube-cache" "$@"; }

# sa_kubeconfig SERVICEACCOUNT FILE: a kubeconfig with the real token of kube-system/SERVICEACCOUNT.
sa_kubeconfig() {
  local sa=$1 file=$2 deadline=$((SECONDS + TOKEN_TIMEOUT)) secret="" token=""
  while :; do
    secret=$(kc -n kube-system get serviceaccount "$sa" -o 'jsonpath={.secrets[0].name}' 2>/dev/null || true)
    if [[ -n $secret ]]; then
      token=$(kc -n kube-system get secret "$secret" -o 'jsonpath={.data.token}' 2>/dev/null || true)
      [[ -n $token ]] && break
    fi
    ((SECONDS < deadline)) || fail_with_log kube-controller-manager \
      "no token secret for ServiceAccount kube-system/$sa after ${TOKEN_TIMEOUT}s (the controller-manager's token controller did not create one)"
    sleep 0.5
  done
  token=$(printf '%s' "$token" | base64 -d)
  write_kubeconfig "$file" "system:serviceaccount:kube-system:$sa" "$token"
}

print_env() {
  cat <<EOF
export BERTH_TESTENV_DIR=$DIR
export BERTH_ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
export BERTH_PLUGIN_KUBECONFIG=$DIR/berth.kubeconfig
export BERTH_CONTROLLER_KUBECONFIG=$DIR/controller.kubeconfig
export BERTH_KUBECTL=$KUBECTL
export BERTH_APISERVER=https://$API_HOST:$APISERVER_PORT
EOF
  if ((NODE)); then node_print_env; fi
}

write_kubeconfig() { # write_kubeconfig FILE USER TOKEN
  umask 077
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: berth-testenv
    cluster:
      server: https://$API_HOST:$APISERVER_PORT
      certificate-authority: $DIR/pki/ca.crt
users:
  - name: $2
    user:
      token: $3
contexts:
  - name: berth-testenv
    context:
      cluster: berth-testenv
      user: $2
current-context: berth-testenv
EOF
  umask 022
}

# ---------------------------------------------------------------- steps

ensure_binaries() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  [[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
  # Debian's etcd-server package starts a system etcd on 2379; we never use it.
  if systemctl is-active --quiet etcd 2>/dev/null; then
    log "note: a system etcd service is running; ours uses its own port"
  fi
  # The node's binaries too when this plane has a node, or when the caller will want one next
  # (BERTH_K8S_NODE=1, as run-tests.ts sets before a run that includes the real node): one
  # `make` for all six costs far less than two.
  K8S=$(BERTH_K8S_NODE=$((NODE || ${BERTH_K8S_NODE:-0})) bash "$ROOT/scripts/build-k8s.sh") || die "scripts/build-k8s.sh failed"
  KUBECTL=$K8S/kubectl
  for b in kube-apiserver kube-controller-manager kubectl; do
    [[ -x $K8S/$b ]] || die "$K8S/$b missing after build-k8s.sh"
  done
}

make_pki() {
  local p=$DIR/pki
  mkdir -p "$p"
  (
    cd "$p"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout ca.key -out ca.crt \
      -subj "/CN=berth-testenv-ca" 2>/dev/null
    cat >apiserver.ext <<EXT
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:10.96.0.1, IP:$API_HOST, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
EXT
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 30 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # ServiceAccount token signing key pair.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

wait_for() { # wait_for NAME TIMEOUT CHECK-CMD...
  local name=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    pid_alive "$name" || fail_with_log "$name" "$name exited during startup"
    ((SECONDS < deadline)) || fail_with_log "$name" "$name not ready after ${timeout}s"
    sleep 0.25
  done
}

# The apiserver's command line, shared by `up` and `restart-apiserver`. Needs
# $DIR, $K8S, $APISERVER_PORT and $ETCD_CLIENT_PORT.
start_apiserver() {
  start_proc kube-apiserver "$K8S/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address "$API_HOST" \
    --advertise-address "$API_HOST" \
    --secure-port "$APISERVER_PORT" \
    --insecure-port 0 \
    --tls-cert-file "$DIR/pki/apiserver.crt" \
    --tls-private-key-file "$DIR/pki/apiserver.key" \
    --client-ca-file "$DIR/pki/ca.crt" \
    --token-auth-file "$DIR/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$DIR/pki/sa.pub" \
    --service-account-signing-key-file "$DIR/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type "$( ((NODE)) && echo lease || echo none)" \
    --allow-privileged=true \
    --kubelet-preferred-address-types InternalIP \
    --profiling=false \
    --logtostderr=true \
    --v=1
}

apiserver_ready() { [[ $(admin_curl /readyz 2>/dev/null) == ok ]]; }

# start_etcd: etcd on 127.0.0.1 with its own data dir; returns once /health answers.
start_etcd() {
  start_proc etcd /usr/bin/etcd \
    --name berth-testenv \
    --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "berth-testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state new \
    --snapshot-count 100000 \
    --log-level warn
  wait_for etcd "$READY_TIMEOUT" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

# start_controller_manager: no node IPAM (and no node lifecycle without a real
# node); returns once /healthz answers.
start_controller_manager() {
  start_proc kube-controller-manager "$K8S/kube-controller-manager" \
    --kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 \
    --secure-port "$KCM_PORT" \
    --port 0 \
    --cert-dir "$DIR/kcm-certs" \
    --controllers "$( ((NODE)) && echo '*,-nodeipam,-attachdetach,-persistentvolume-binder' || echo '*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder')" \
    --leader-elect=false \
    --use-service-account-credentials=false \
    --service-account-private-key-file "$DIR/pki/sa.key" \
    --root-ca-file "$DIR/pki/ca.crt" \
    --cluster-signing-cert-file "$DIR/pki/ca.crt" \
    --cluster-signing-key-file "$DIR/pki/ca.key" \
    --allocate-node-cidrs=false \
    --profiling=false \
    --logtostderr=true \
    --v=1
  wait_for kube-controller-manager "$READY_TIMEOUT" curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
}

# pick_ports: the API server's port (BERTH_TESTENV_PORT, or the first free one
# from 6443), then etcd's and the controller-manager's (and the real node's),
# written to $DIR/env with the rest of what later commands read back.
pick_ports() {
  if [[ -n ${BERTH_TESTENV_PORT:-} ]]; then
    APISERVER_PORT=$BERTH_TESTENV_PORT
    port_busy "$APISERVER_PORT" "$API_HOST" && die "BERTH_TESTENV_PORT=$APISERVER_PORT is already in use"
  else
    APISERVER_PORT=6443
    while port_busy "$APISERVER_PORT" "$API_HOST"; do APISERVER_PORT=$((APISERVER_PORT + 1)); done
  fi
  ETCD_CLIENT_PORT=$(free_port 23790 "$APISERVER_PORT")
  ETCD_PEER_PORT=$(free_port $((ETCD_CLIENT_PORT + 1)) "$APISERVER_PORT" "$ETCD_CLIENT_PORT")
  KCM_PORT=$(free_port 10357 "$APISERVER_PORT" "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT")
  cat >"$DIR/env" <<EOF
APISERVER_PORT=$APISERVER_PORT
ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
KCM_PORT=$KCM_PORT
KUBECTL=$KUBECTL
K8S=$K8S
NODE=$NODE
API_HOST=$API_HOST
EOF
  if ((NODE)); then
    node_pick_ports "$APISERVER_PORT" "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" >>"$DIR/env"
    load_env
  fi
}

# make_credentials: the PKI, the static tokens of the admin and the
# controller-manager (and of the real node's components), their kubeconfigs.
make_credentials() {
  make_pki
  local admin_token kcm_token
  admin_token=$(openssl rand -hex 24)
  kcm_token=$(openssl rand -hex 24)
  (umask 077; echo "$admin_token" >"$DIR/admin.token")
  # token,user,uid,"groups". The controller-manager runs as its own user but in
  # system:masters, since it does not use per-controller SA credentials.
  (
    umask 077
    cat >"$DIR/tokens.csv" <<EOF
$admin_token,berth-admin,berth-admin,"system:masters"
$kcm_token,system:kube-controller-manager,system:kube-controller-manager,"system:masters"
EOF
    if ((NODE)); then node_tokens >>"$DIR/tokens.csv"; fi
  )
  write_kubeconfig "$DIR/admin.kubeconfig" berth-admin "$admin_token"
  write_kubeconfig "$DIR/kube-controller-manager.kubeconfig" system:kube-controller-manager "$kcm_token"
}

# apply_fixtures: berth's CRDs (waited for until Established) and RBAC.
apply_fixtures() {
  log "applying fixtures/crds and fixtures/rbac.yaml"
  kc apply -f "$ROOT/fixtures/crds/" >&2 || fail_with_log kube-apiserver "applying fixtures/crds failed"
  kc wait --for condition=Established --timeout 30s -f "$ROOT/fixtures/crds/" >&2 ||
    fail_with_log kube-apiserver "CRDs not Established after 30s"
  # kubectl cached discovery before the CRDs existed; without this, short names
  # such as `bic` are unknown to it for up to ten minutes.
  rm -rf "$DIR/kube-cache"
  kc apply -f "$ROOT/fixtures/rbac.yaml" >&2 || fail_with_log kube-apiserver "applying fixtures/rbac.yaml failed"
}

# wait_default_service_account: pods need their namespace's `default`
# ServiceAccount and its token secret (ServiceAccount admission); wait for it
# in `default` so the first test pod is not rejected.
wait_default_service_account() {
  local deadline=$((SECONDS + TOKEN_TIMEOUT))
  until [[ -n $(kc -n default get serviceaccount default -o 'jsonpath={.secrets[0].name}' 2>/dev/null || true) ]]; do
    ((SECONDS < deadline)) || fail_with_log kube-controller-manager "ServiceAccount default/default has no token after ${TOKEN_TIMEOUT}s"
    sleep 0.5
  done
}

# make_nodes: nodes for tests to bind pods to (no kubelet: the heartbeat reports them Ready).
make_nodes() {
  local n
  for n in node1 node2 node3; do
    kc apply -f - >&2 <<EOF || fail_with_log kube-apiserver "creating node $n failed"
apiVersion: v1
kind: Node
metadata:
  name: $n
  labels:
    kubernetes.io/hostname: $n
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
EOF
  done
}

# refresh: `up` on a plane that is up and healthy. The fixtures may have
# changed since it was started: apply them again (cheap, idempotent).
refresh() {
  log "already up and healthy ($DIR); applying fixtures/crds and fixtures/rbac.yaml again"
  kc apply -f "$ROOT/fixtures/crds/" -f "$ROOT/fixtures/rbac.yaml" >&2
  kc wait --for condition=Established --timeout 30s -f "$ROOT/fixtures/crds/" >&2
  rm -rf "$DIR/kube-cache"
  [[ -f $DIR/controller.kubeconfig ]] || sa_kubeconfig berth-controller "$DIR/controller.kubeconfig"
  ((NODE)) || start_heartbeat
  print_env
}

up() {
  if healthy; then
    refresh
    return 0
  fi
  if [[ -e $DIR ]]; then
    log "$DIR exists but the control plane is not healthy: tearing it down and starting fresh"
    down_inner
  fi

  ensure_binaries
  ((NODE)) && node_ensure_prerequisites
  local t0=$SECONDS

  # Ports: all on 127.0.0.1, picked once and remembered in $DIR/env.
  mkdir -p "$DIR"
  # A failed `up` stops what it started but keeps $DIR (logs) for a look;
  # the next `up` or `down` removes it.
  trap 'if [[ ! -f $DIR/ready ]]; then stop_all; log "up failed; logs kept in $DIR (scripts/testenv.sh down removes them)"; fi' EXIT
  # A real node's API server address (its own interface) must exist before its port is checked.
  ((NODE)) && node_prepare_host
  pick_ports
  make_credentials

  start_etcd
  start_apiserver
  wait_for kube-apiserver "$READY_TIMEOUT" apiserver_ready
  log "kube-apiserver ready on https://$API_HOST:$APISERVER_PORT after $((SECONDS - t0))s"
  start_controller_manager
  apply_fixtures
  # The plugin's and the controller's identities: the real tokens of their
  # ServiceAccounts, made by the controller-manager's token controller.
  sa_kubeconfig berth "$DIR/berth.kubeconfig"
  sa_kubeconfig berth-controller "$DIR/controller.kubeconfig"
  wait_default_service_account

  if ((NODE)); then
    node_up
  else
    make_nodes
    start_heartbeat
  fi
  touch "$DIR/ready"
  log "up in $((SECONDS - t0))s ($DIR)"
  print_env
}

stop_all() {
  stop_proc heartbeat
  if ((NODE)); then node_stop; fi
  stop_proc kube-controller-manager
  stop_proc kube-apiserver
  stop_proc etcd
  if ((NODE)); then node_restore_host; fi
}

down_inner() {
  load_env 2>/dev/null || true
  stop_all
  rm -rf "$DIR"
}

down() {
  if [[ ! -e $DIR ]]; then
    log "nothing to do: $DIR does not exist"
    return 0
  fi
  down_inner
  log "down; removed $DIR"
}

status() {
  if healthy; then
    log "healthy: https://$API_HOST:$APISERVER_PORT ($DIR)"
    return 0
  fi
  local n
  load_env 2>/dev/null || true
  for n in etcd kube-apiserver kube-controller-manager heartbeat $( ((NODE)) && echo "${NODE_DAEMONS[*]}"); do
    if pid_alive "$n"; then log "$n: running (pid $(<"$DIR/$n.pid"))"; else log "$n: not running"; fi
  done
  log "not healthy ($DIR)"
  return 1
}

# Stops only kube-apiserver and starts it again with the same flags (etcd and
# the controller-manager keep running); returns once /readyz answers ok.
restart_apiserver() {
  healthy || die "the control plane is not up and healthy ($DIR): run scripts/testenv.sh up"
  local t0=$SECONDS
  stop_proc kube-apiserver
  start_apiserver
  wait_for kube-apiserver "$READY_TIMEOUT" apiserver_ready
  log "kube-apiserver restarted; ready again after $((SECONDS - t0))s"
}

# One `up`/`down`/`restart-apiserver` at a time per state dir.
with_lock() {
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock -w 300 9 || die "could not lock $DIR.lock"
  "$@"
}

case ${1:-} in
  up) with_lock up ;;
  down) with_lock down ;;
  status) status ;;
  restart-apiserver) with_lock restart_apiserver ;;
  heartbeat) heartbeat_loop ;;
  *)
    echo "usage: $0 up|down|status|restart-apiserver" >&2
    exit 2
    ;;
esac
