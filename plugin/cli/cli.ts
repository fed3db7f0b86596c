/** The operator's side of the binary: `berth version | inspect | release | controller | install | check | adopt | --help`. */
import mri from "mri";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SUPPORTED_VERSIONS } from "../cni/cni-version.ts";
import { DEFAULT_DATA_DIR } from "../ipam/config.ts";
import { BERTH_VERSION } from "../support/version.ts";
import type { OpenDriver } from "../../store/driver.ts";
import { LeaseStore } from "../../store/lease-store.ts";
import { renderTable } from "../support/table.ts";

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

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  openDriver: OpenDriver;
  /** Loads the controller (an entry point of its own: see main.ts). */
  loadController: () => Promise<typeof import("../controller/controller-main.ts").controllerMain>;
  /** Loads `berth install` (an entry point of its own: see main.ts). */
  loadInstall: () => Promise<typeof import("../install/install.ts")>;
  /** Loads `berth check` (the operator entry: see main.ts). */
  loadCheck: () => Promise<Pick<typeof import("../check/check-main.ts"), "checkMain" | "checkOptions">>;
  /** Loads `berth adopt` (the operator entry: see main.ts). */
  loadAdopt: () => Promise<Pick<typeof import("../adopt/adopt-main.ts"), "adoptMain" | "adoptOptions">>;
}

/** Runs the CLI; returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const args = mri(argv, {
    string: [
      "db",
      "network",
      "o",
      "kubeconfig",
      "listen",
      "lease-namespace",
      "lease-name",
      "identity",
      "log-level",
      "source",
      "cni-bin-dir",
      "kubeconfig-out",
      "token-file",
      "ca-file",
      "server",
      "data-dir",
      "node-name",
      "from",
      "interface",
    ],
    boolean: ["help", "h", "once", "check", "release-terminating-on-unready-nodes", "node", "repair", "dry-run"],
    alias: { o: "output" },
  });
  const [command, ...rest] = args._.map(String);
  if (args.help || args.h || command === "help") {
    io.out(HELP);
    return 0;
  }
  const db = (args.db as string | undefined) ?? join(DEFAULT_DATA_DIR, "berth.db");
  const network = args.network as string | undefined;
  const json = args.o === "json";
  if (args.o !== undefined && !json && args.o !== "table") return usage(io, `unknown output format ${JSON.stringify(args.o)} (table or json)`);
  switch (command) {
    case undefined:
      io.out(HELP);
      return 0;
    case "version":
      io.out(
        json
          ? `${JSON.stringify({ version: BERTH_VERSION, cniVersions: SUPPORTED_VERSIONS })}\n`
          : `berth ${BERTH_VERSION} (CNI ${SUPPORTED_VERSIONS.join(", ")})\n`,
      );
      return 0;
    case "inspect":
      return inspect(io, rest[0] ?? "leases", db, network, json);
    case "release":
      return release(io, rest[0], db, network, json);
    case "controller": {
      const num = (k: string) => (args[k] === undefined ? undefined : Number(args[k]));
      for (const k of ["resync-seconds", "add-timeout-seconds", "list-page-size"]) {
        const v = num(k);
        if (v !== undefined && !(v > 0)) return usage(io, `--${k} must be a positive number, got ${JSON.stringify(args[k])}`);
      }
      const checkEvery = num("check-interval-seconds");
      if (checkEvery !== undefined && !(checkEvery >= 0))
        return usage(io, `--check-interval-seconds must be 0 (none) or more, got ${JSON.stringify(args["check-interval-seconds"])}`);
      const pageSize = num("list-page-size");
      if (pageSize !== undefined && !Number.isInteger(pageSize))
        return usage(io, `--list-page-size must be a whole number, got ${JSON.stringify(args["list-page-size"])}`);
      const controllerMain = await io.loadController();
      return controllerMain({
        kubeconfig: args.kubeconfig,
        listen: args.listen,
        resyncSeconds: num("resync-seconds"),
        leaseNamespace: args["lease-namespace"],
        leaseName: args["lease-name"],
        identity: args.identity,
        addTimeoutSeconds: num("add-timeout-seconds"),
        logLevel: args["log-level"],
        releaseTerminatingOnUnreadyNodes: args["release-terminating-on-unready-nodes"] === true,
        listPageSize: pageSize,
        checkIntervalSeconds: checkEvery,
      });
    }
    case "install": {
      const { installMain, installOptions, installProblem } = await io.loadInstall();
      const opts = installOptions(args, rest);
      if (typeof opts === "string") return usage(io, opts);
      if (!opts.check) return installMain(opts);
      // One line: the kubelet shows a failed probe's output in the pod's events.
      const problem = installProblem(opts);
      if (problem) io.err(`berth: not ready: ${problem}\n`);
      return problem ? 1 : 0;
    }
    case "check": {
      const { checkMain, checkOptions } = await io.loadCheck();
      const opts = checkOptions({ ...args, db: args.db }, rest);
      if (typeof opts === "string") return usage(io, opts);
      return checkMain(opts, { out: io.out, err: io.err, openDriver: io.openDriver, env: process.env });
    }
    case "adopt": {
      const { adoptMain, adoptOptions } = await io.loadAdopt();
      const opts = adoptOptions(args, rest);
      if (typeof opts === "string") return usage(io, opts);
      return adoptMain(opts, { out: io.out, err: io.err, env: process.env });
    }
    default:
      return usage(io, `unknown command ${JSON.stringify(command)}`);
  }
}

function usage(io: CliIo, message: string): number {
  io.err(`berth: ${message}\nRun 'berth --help' for usage.\n`);
  return 2;
}

function openExisting(io: CliIo, db: string, readonly: boolean): LeaseStore | undefined {
  if (!existsSync(db)) {
    io.err(`berth: no lease database at ${db} (nothing allocated on this node yet, or pass --db)\n`);
    return undefined;
  }
  return readonly ? LeaseStore.inspect(io.openDriver(db, { readonly: true })) : LeaseStore.open(io.openDriver(db));
}

function inspect(io: CliIo, what: string, db: string, network: string | undefined, json: boolean): number {
  if (!["leases", "bindings", "pools"].includes(what)) return usage(io, `cannot inspect ${JSON.stringify(what)}: choose leases, bindings or pools`);
  const store = openExisting(io, db, true);
  if (!store) return 1;
  try {
    if (what === "leases") {
      const rows = store.listLeases(network);
      io.out(
        json
          ? `${JSON.stringify(rows, null, 2)}\n`
          : renderTable(
              ["NETWORK", "ADDRESS", "POOL", "POD", "CONTAINER", "IFNAME", "SINCE", "STATE"],
              rows.map((l) => [
                l.network,
                l.address,
                l.pool,
                l.pod_name ? `${l.pod_namespace}/${l.pod_name}` : "-",
                l.container_id.slice(0, 12),
                l.ifname,
                l.created_at,
                l.state,
              ]),
            ),
      );
    } else if (what === "bindings") {
      const rows = store.bindings.list(network);
      io.out(
        json
          ? `${JSON.stringify(rows, null, 2)}\n`
          : renderTable(
              ["NETWORK", "POD", "IFNAME", "ADDRESS", "POOL", "BOUND-SINCE", "LAST-USED"],
              rows.map((b) => [b.network, `${b.pod_namespace}/${b.pod_name}`, b.ifname, b.address, b.pool, b.created_at, b.last_used_at]),
            ),
      );
    } else {
      const rows = store.bindings.listPools(network);
      io.out(
        json
          ? `${JSON.stringify(
              rows.map((p) => ({ ...p, is_default: !!p.is_default, disabled: !!p.disabled })),
              null,
              2,
            )}\n`
          : renderTable(
              ["NETWORK", "NAME", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "DEFAULT", "DISABLED"],
              rows.map((p) => [p.network, p.name, p.subnet, String(p.allocated), String(p.total), String(!!p.is_default), String(!!p.disabled)]),
            ),
      );
    }
    return 0;
  } finally {
    store.close();
  }
}

function release(io: CliIo, target: string | undefined, db: string, network: string | undefined, json: boolean): number {
  const m = target ? /^([^/]+)\/([^/]+)$/.exec(target) : null;
  if (!m) return usage(io, `release needs NAMESPACE/POD, got ${JSON.stringify(target ?? "")}`);
  const [, ns, pod] = m;
  const store = openExisting(io, db, false);
  if (!store) return 1;
  try {
    const { gone, inUse } = store.immediate(() => ({ gone: store.bindings.releasePod(ns, pod, network), inUse: store.leasesOfPod(ns, pod, network) }));
    if (json) {
      io.out(`${JSON.stringify({ released: gone, stillLeased: inUse }, null, 2)}\n`);
    } else if (gone.length === 0) {
      io.out(`no binding for ${ns}/${pod}${network ? ` in network ${network}` : ""}\n`);
    } else {
      for (const b of gone) io.out(`released binding ${ns}/${pod} ${b.ifname} ${b.address} (pool ${b.pool}, network ${b.network})\n`);
    }
    for (const l of inUse) io.err(`note: ${l.address} stays leased to container ${l.container_id} until its CNI DEL\n`);
    return 0;
  } finally {
    store.close();
  }
}
