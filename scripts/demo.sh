#!/usr/bin/env bash
# berth demo: StatefulSet pods keep their IP addresses across delete/recreate.
#
# Local mode, through the real chain: Debian's reference `bridge` CNI plugin
# delegates IPAM to dist/berth, and every "pod" is a real network namespace
# with a veth on the bridge. Addresses are only assigned and read back with
# `ip -n NS addr`; no traffic is sent.
#
#   npm run demo            (builds dist/berth first)
#   bash scripts/demo.sh    (after npm run build)
#
# Needs root, iproute2 and containernetworking-plugins (scripts/setup.sh).
# Everything it creates (netns, bridge, veths, temp dir) is removed on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BERTH=$ROOT/dist/berth
BRIDGE_PLUGIN=/usr/lib/cni/bridge
BRIDGE=berthdemo0
NETWORK=berth-demo
NS_PREFIX="berth-demo-$$-"

# berth runs as a CNI plugin whenever CNI_* variables are set; the `inspect`
# calls below must see none. The bridge plugin gets its own via `env -i`.
unset CNI_COMMAND CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_ARGS CNI_PATH

if [[ -t 1 ]]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; D=$'\e[2m'; N=$'\e[0m'; else B='' G='' R='' D='' N=''; fi
die() { echo "${R}demo: $*${N}" >&2; exit 1; }
step() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }

# ---------------------------------------------------------------- preconditions
[[ $EUID -eq 0 ]] || die "run as root: the demo creates network namespaces, a bridge and veths"
[[ -x $BERTH ]] || die "$BERTH is missing: run 'npm run build' first (or 'npm run demo')"
[[ -x $BRIDGE_PLUGIN ]] || die "$BRIDGE_PLUGIN is missing: run scripts/setup.sh (apt-get install containernetworking-plugins)"
command -v ip >/dev/null || die "'ip' is missing: run scripts/setup.sh (apt-get install iproute2)"
if ip link show dev "$BRIDGE" &>/dev/null; then
  die "bridge $BRIDGE already exists (another demo running, or left over: 'ip link del $BRIDGE')"
fi

# ---------------------------------------------------------------- workspace
WORK=$(mktemp -d /tmp/berth-demo.XXXXXX)
DATA=$WORK/data           # ipam.dataDir: berth keeps berth.db here
DB=$DATA/berth.db
PLUGINS=$WORK/plugins     # first entry of CNI_PATH: bridge finds "berth" here
LOG=$WORK/berth.log       # ipam.logFile
CONF=$WORK/netconf.json
# The demo keeps its files under /tmp; a real node keeps dataDir under /var/lib/cni. Paths
# outside the documented prefixes need the node's consent (a root-owned node configuration).
NODE_CONF=$WORK/node.json
mkdir -p "$DATA" "$PLUGINS"
echo "{\"extraPathPrefixes\": [\"$WORK/\"]}" >"$NODE_CONF"
ln -s "$BERTH" "$PLUGINS/berth"

declare -A POD_NS=() POD_CID=() POD_UID=()   # running pods: netns, container ID, pod UID
GEN=0

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  echo
  echo "${D}cleaning up: pods, namespaces, bridge $BRIDGE, $WORK${N}"
  local pod
  for pod in "${!POD_NS[@]}"; do
    [[ -n ${POD_CID[$pod]:-} ]] && cni DEL "$pod" >/dev/null 2>&1
    ip netns del "${POD_NS[$pod]}" 2>/dev/null
  done
  ip link del "$BRIDGE" 2>/dev/null
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$CONF" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$NETWORK",
  "type": "bridge",
  "bridge": "$BRIDGE",
  "isGateway": false,
  "ipam": {
    "type": "berth",
    "dataDir": "$DATA",
    "logFile": "$LOG",
    "pools": [
      { "name": "test-ippool", "subnet": "10.6.0.0/16", "ips": ["10.6.168.101-10.6.168.110"], "gateway": "10.6.0.1" }
    ],
    "default_ipv4_ippool": ["test-ippool"]
  }
}
EOF

# ---------------------------------------------------------------- pods
# cni ADD|DEL POD: runs the bridge plugin for the pod's current sandbox, as a runtime would.
cni() {
  local cmd=$1 pod=$2
  env -i PATH="$PATH" \
    CNI_COMMAND="$cmd" \
    CNI_CONTAINERID="${POD_CID[$pod]}" \
    CNI_NETNS="/var/run/netns/${POD_NS[$pod]}" \
    CNI_IFNAME=eth0 \
    CNI_PATH="$PLUGINS:/usr/lib/cni" \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod;K8S_POD_UID=${POD_UID[$pod]}" \
    BERTH_NODE_CONFIG="$NODE_CONF" \
    "$BRIDGE_PLUGIN" <"$CONF"
}

new_id() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

start_pod() {
  local pod=$1 out
  GEN=$((GEN + 1))
  POD_NS[$pod]="${NS_PREFIX}${GEN}"
  POD_CID[$pod]=""
  POD_UID[$pod]=$(cat /proc/sys/kernel/random/uuid)
  ip netns add "${POD_NS[$pod]}" || die "ip netns add ${POD_NS[$pod]} failed"
  POD_CID[$pod]=$(new_id)
  if ! out=$(cni ADD "$pod" 2>&1); then
    echo "$out" >&2
    die "bridge ADD for $pod failed (berth log: $LOG)"
  fi
}

stop_pod() {
  local pod=$1 out
  if ! out=$(cni DEL "$pod" 2>&1); then
    echo "$out" >&2
    die "bridge DEL for $pod failed"
  fi
  ip netns del "${POD_NS[$pod]}"
  unset "POD_NS[$pod]" "POD_CID[$pod]" "POD_UID[$pod]"
}

# The pod's IPv4 address as the kernel has it inside the pod's namespace.
addr_of() {
  ip -n "${POD_NS[$1]}" -4 -o addr show dev eth0 scope global | awk '{print $4}'
}

# show_pods VAR POD...: prints the table and stores pod -> address in the associative array VAR.
show_pods() {
  local -n into=$1
  shift
  printf '  %-12s %-18s %-20s %-14s %s\n' POD ADDRESS NETNS CONTAINER-ID POD-UID
  local pod
  for pod in "$@"; do
    into["$pod"]=$(addr_of "$pod")
    printf '  %-12s %s%-18s%s %-20s %-14s %s\n' "$pod" "$B" "${into[$pod]:-(none)}" "$N" "${POD_NS[$pod]}" "${POD_CID[$pod]:0:12}" "${POD_UID[$pod]:0:8}"
  done
}

inspect() { "$BERTH" inspect "$1" --db "$DB" | sed 's/^/  /'; }

# ---------------------------------------------------------------- the story
echo "${B}berth demo${N}: local mode, bridge plugin + berth IPAM, pool test-ippool = 10.6.168.101-10.6.168.110 (10.6.0.0/16, gateway 10.6.0.1)"
echo "${D}dataDir $DATA, bridge $BRIDGE, network namespaces ${NS_PREFIX}*${N}"

step "1. Create StatefulSet pods default/test-sts-0 and default/test-sts-1"
start_pod test-sts-0
start_pod test-sts-1
declare -A FIRST=()
show_pods FIRST test-sts-0 test-sts-1

step "2. Delete both pods (bridge DEL, network namespaces deleted)"
stop_pod test-sts-0
stop_pod test-sts-1
echo "  leases (addresses held by running sandboxes):"
inspect leases
echo "  bindings (addresses kept for StatefulSet pods):"
inspect bindings

step "3. Recreate them: new network namespaces, new container IDs, new pod UIDs"
start_pod test-sts-0
start_pod test-sts-1
declare -A SECOND=()
show_pods SECOND test-sts-0 test-sts-1

echo
mismatch=0
for pod in test-sts-0 test-sts-1; do
  if [[ -n ${FIRST[$pod]} && ${FIRST[$pod]} == "${SECOND[$pod]}" ]]; then
    echo "  ${G}same address${N}  $pod: ${FIRST[$pod]} -> ${SECOND[$pod]}"
  else
    echo "  ${R}DIFFERENT${N}     $pod: ${FIRST[$pod]:-(none)} -> ${SECOND[$pod]:-(none)}"
    mismatch=1
  fi
done
if ((mismatch)); then
  die "recreated StatefulSet pods did not get their addresses back"
fi
echo "  ${G}${B}Both pods kept their addresses.${N}"

step "4. Scale the StatefulSet to 3: default/test-sts-2"
start_pod test-sts-2
# Filled by show_pods through its nameref; shellcheck cannot see that use.
# shellcheck disable=SC2034
declare -A THIRD=()
show_pods THIRD test-sts-0 test-sts-1 test-sts-2

step "5. dist/berth inspect pools --db $DB"
inspect pools

step "6. dist/berth inspect bindings --db $DB"
inspect bindings

echo
echo "${G}${B}Demo finished: StatefulSet pods keep their addresses across delete and recreate.${N}"
