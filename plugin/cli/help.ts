/** `berth --help`: every operator command and the CNI plugin call, in one text. */
import { join } from "node:path";
import { DEFAULT_DATA_DIR } from "../ipam/config.ts";
import { BERTH_VERSION } from "../support/version.ts";

/** The text `berth --help` (and `berth` alone) prints. */
export const HELP = `berth ${BERTH_VERSION}: CNI IPAM plugin that keeps StatefulSet pods on the same IP address

As a CNI plugin (CNI_COMMAND set) it reads the network configuration on stdin
and prints one JSON result. Without CNI_COMMAND it is a tool for operators:

  berth version
      Print berth's version and the CNI spec versions it supports.

  berth inspect [leases|bindings|pools] [--db PATH] [--network NAME] [-o json]
      Show the node's lease database (default ${join(DEFAULT_DATA_DIR, "berth.db")}):
        leases    addresses held by running attachments (container ID + interface);
                  STATE pending = a cluster-mode ADD in flight or interrupted
        bindings  addresses kept for StatefulSet pods between sandboxes
        pools     pools as last configured, with allocated/total counts
      -o json prints JSON instead of a table.

  berth release NAMESPACE/POD [--db PATH] [--network NAME]
      Forget a StatefulSet pod's binding so its address returns to the pool once
      no sandbox leases it. Use after deleting a StatefulSet for good (local mode
      cannot see that happen).

  berth controller [--kubeconfig PATH] [--listen HOST:PORT] [--resync-seconds N]
                   [--lease-namespace NS] [--lease-name NAME] [--identity ID]
                   [--add-timeout-seconds N] [--list-page-size N]
                   [--check-interval-seconds N] [--log-level LEVEL]
      Cluster mode's reconciler (in-cluster configuration without --kubeconfig).
      One replica acts at a time (a coordination.k8s.io Lease, default
      kube-system/berth-controller); it frees the addresses of pods that are gone
      (and of StatefulSet ordinals that are gone with them) and of ADDs that never
      finished for pods that are gone, keeps pool counts true, writes lost
      endpoint entries back, strips phantom bindings, and serves /healthz and
      /metrics (default 0.0.0.0:9542). An address whose pod object still exists
      is held (a pod Terminating past its grace period included) until its DEL
      runs or the object is gone. Full scans LIST in pages of --list-page-size
      objects (default 500). Every --check-interval-seconds (default 300; 0:
      never) it runs berth check's cluster checks for /metrics
      (berth_check_problems, berth_pool_addresses). --release-terminating-on-
      unready-nodes is accepted and ignored (0.4's flag; see docs/safety.md).

  berth install [--source PATH] [--cni-bin-dir DIR] [--kubeconfig-out PATH]
                [--token-file PATH] [--ca-file PATH] [--server URL] [--once]
                [--interval-seconds N] [--log-level LEVEL]
      What the DaemonSet runs on every node. Copies this binary (or --source) to
      DIR/berth (default /host/opt/cni/bin) atomically, unless it is already
      identical; writes the plugin's kubeconfig (default
      /host/etc/cni/net.d/berth.d/berth.kubeconfig, mode 0600) with the pod's
      service-account token and CA (default /var/run/secrets/kubernetes.io/
      serviceaccount/token and ca.crt) and the API server from
      KUBERNETES_SERVICE_HOST/PORT (or --server); then, unless --once, rewrites
      it when the token or CA changes (checked every 30 s) until SIGTERM.

  berth install --check [--source PATH] [--cni-bin-dir DIR] [--kubeconfig-out PATH]
      The DaemonSet's readiness probe; writes nothing. Exits 0 when DIR/berth is
      this binary (or --source) byte for byte with mode 0755 and the kubeconfig
      is a regular file, 0600, in a 0700 directory; otherwise exits 1 with one
      line on stderr naming what is missing or different.

  berth check [--kubeconfig PATH] [-o table|json] [--repair [--dry-run]]
              [--list-page-size N] [--add-timeout-seconds N]
  berth check --node [--data-dir DIR] [--node-name NAME] [--kubeconfig PATH] [-o table|json]
  berth check --db PATH [-o table|json]
      Tells the truth about IPAM state, on a live cluster (no lock): addresses
      on two live pods (duplicate-address), claims whose holder is provably
      gone (orphan-claim), addresses live pods show that no claim holds
      (missing-claim), endpoints listing addresses not theirs
      (phantom-binding), claims outside their pool (outside-pool), pool counts
      that drift (count-drift), and each pool's figures. --node compares this
      node's database (default ${join(DEFAULT_DATA_DIR, "berth.db")}; node name
      from NODE_NAME, else the host name) with the claims for this node; --db
      checks a local-mode database alone. --repair fixes what is provably safe
      (never a duplicate); --dry-run says what it would do. Exit 0: nothing
      found, or all repaired; 1: problems remain; 2: the check could not run.
      Kubeconfig: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else
      in-cluster.

  berth adopt --from whereabouts|spiderpool [--kubeconfig PATH] [--dry-run]
              [-o table|json] [--interface NAME]
      Takes over the addresses another IPAM gave to pods, so that switching a
      network to berth re-IPs no running pod: for each address in use
      (Whereabouts' IPPools and OverlappingRangeIPReservations; Spiderpool's
      SpiderIPPool status.allocatedIPs and SpiderEndpoints) it creates the
      BerthIPClaim and BerthEndpoint entry berth's ADD would have written,
      labelled ipam.berth.dev/adopted-from. Every address needs a SpiderIPPool that
      holds it (--dry-run lists those missing). Pods that are gone are not
      adopted, unless their StatefulSet still keeps the ordinal. Spiderpool's
      SpiderReservedIPs go into the excludeIPs of the pools they cover. The
      interface comes from the records, else the pod's Multus network-status,
      else --interface (default net1). Safe to run again. Exit 0: no conflict
      (also --dry-run); 1: a conflict (the rest was adopted); 2: adopt could
      not run (nothing missing was written). See docs/adopt.md.

  berth --help
      This text.
`;
