/** The operator's side of the binary: `berth version | inspect | release | controller | install | check | adopt | --help`. */

import { existsSync } from "node:fs";
import { join } from "node:path";
import mri from "mri";
import type { OpenDriver } from "../../store/driver.ts";
import { LeaseStore } from "../../store/lease-store.ts";
import { SUPPORTED_VERSIONS } from "../cni/cni-version.ts";
import { DEFAULT_DATA_DIR } from "../ipam/config.ts";
import { renderTable } from "../support/table.ts";
import { BERTH_VERSION } from "../support/version.ts";
import { HELP } from "./help.ts";

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
