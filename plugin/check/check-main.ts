/**
 * Entry of `berth check` (an entry point of its own in the binary:
 * support/lazy-entries.ts). Three scopes:
 * - the cluster (default): pools, claims, endpoints, pods, StatefulSets and
 *   nodes, LISTed in pages beside the live ADDs and controller, no lock;
 * - `--node`: this node's database against the claims for this node;
 * - `--db PATH`: a local-mode database alone, no API server.
 * Exit codes (an interface): 0 nothing found, or all found repaired; 1
 * problems remain; 2 the check could not run.
 */
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { OpenDriver } from "../../store/driver.ts";
import { LeaseStore } from "../../store/lease-store.ts";
import { DEFAULT_DATA_DIR } from "../ipam/config.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import { createControllerClient } from "../kube/controller-client.ts";
import { resolveKubeconfig } from "../kube/kubeconfig-path.ts";
import type { Logger } from "../support/logger.ts";
import { createLogger } from "../support/logger.ts";
import { gatherFacts } from "./cluster-facts.ts";
import { confirmAll } from "./confirm.ts";
import { findProblems } from "./find-problems.ts";
import { damaged, integrity, localPools, localProblems, nodeProblems } from "./node-check.ts";
import { type CheckReport, type Problem, sortProblems } from "./problem.ts";

export { checkOptions } from "./check-options.ts";

import { renderJson, renderReport } from "./render.ts";
import { repair } from "./repair.ts";

export interface CheckArgs {
  kubeconfig?: string;
  output: "table" | "json";
  repair: boolean;
  dryRun: boolean;
  node: boolean;
  nodeName?: string;
  dataDir?: string;
  db?: string;
  /** Objects per LIST request. */
  pageSize: number;
  /** The controller's --add-timeout-seconds, for the ADD windows of claims. */
  addTimeoutSeconds: number;
  logLevel?: string;
}

export interface CheckIo {
  out: (text: string) => void;
  err: (text: string) => void;
  openDriver: OpenDriver;
  env: Record<string, string | undefined>;
}

/** The controller's Lease: whether one leads tells whether pool counts are kept. */
export const CONTROLLER_LEASE = { namespace: "kube-system", name: "berth-controller" };

/** Runs the check; returns the exit code. */
export async function checkMain(args: CheckArgs, io: CheckIo): Promise<number> {
  const log = createLogger((args.logLevel as "info") ?? "info", 2, { component: "check" });
  let report: CheckReport;
  try {
    if (args.db) report = checkDatabase(args.db, io);
    else if (args.node) report = await checkNode(args, io);
    else report = await checkCluster(args, io, log);
  } catch (err) {
    // A file too damaged to read is the finding itself, not a check that could not run.
    const db = args.db ?? (args.node ? nodeDb(args) : undefined);
    const corrupt = db ? damaged(err, db) : undefined;
    if (!corrupt) {
      io.err(`berth check: ${(err as Error).message}\n`);
      return 2;
    }
    report = { problems: [corrupt], pools: [] };
  }
  report.problems = sortProblems(report.problems);
  io.out(args.output === "json" ? renderJson(report) : renderReport(report));
  return report.problems.some((p) => !p.repaired) ? 1 : 0;
}

/** The kubeconfig as kubectl resolves it: the flag, then $KUBECONFIG (its first file), then ~/.kube/config, then in-cluster. */
function kubeconfigPath(args: CheckArgs, env: Record<string, string | undefined>): string | undefined {
  return resolveKubeconfig(args.kubeconfig, env);
}

function client(args: CheckArgs, env: Record<string, string | undefined>): ControllerApi {
  return createControllerClient(kubeconfigPath(args, env), { requestTimeoutMs: 30_000 });
}

async function checkCluster(args: CheckArgs, io: CheckIo, log: Logger): Promise<CheckReport> {
  const api = client(args, io.env);
  const addTimeoutMs = args.addTimeoutSeconds * 1000;
  const facts = await gatherFacts(api, args.pageSize, CONTROLLER_LEASE);
  const found = await findProblems(facts, addTimeoutMs);
  // Sorted before repairing: count-drift comes after every kind whose repair changes a pool's claims.
  let problems = sortProblems(await confirmAll(api, facts, found.problems, addTimeoutMs));
  if (args.repair) {
    const done: Problem[] = [];
    const showing = (address: string) =>
      [...facts.pods.values()].filter((p) => p.live && p.shown.some((s) => s.address === address)).map((p) => `${p.namespace}/${p.name}`);
    for (const p of problems) done.push(await repair({ api, log, dryRun: args.dryRun, addTimeoutMs, showing }, p));
    problems = done;
  }
  return { problems, pools: found.pools };
}

async function checkNode(args: CheckArgs, io: CheckIo): Promise<CheckReport> {
  const db = nodeDb(args);
  const store = openForReading(db, io);
  try {
    const api = client(args, io.env);
    const node = args.nodeName ?? io.env.NODE_NAME ?? hostname();
    // A finding that may be an ADD or DEL in flight must hold on a second look, a moment later.
    const first = await nodeProblems(store, api, node, args.pageSize);
    const again = first.length ? await nodeProblems(store, api, node, args.pageSize) : [];
    const seen = new Set(again.map(identity));
    return { problems: [...integrity(store, db), ...first.filter((p) => seen.has(identity(p)))], pools: [] };
  } finally {
    store.close();
  }
}

const nodeDb = (args: CheckArgs) => join(args.dataDir ?? DEFAULT_DATA_DIR, "berth.db");

function checkDatabase(db: string, io: CheckIo): CheckReport {
  const store = openForReading(db, io);
  try {
    return { problems: [...integrity(store, db), ...localProblems(store)], pools: localPools(store) };
  } finally {
    store.close();
  }
}

function openForReading(db: string, io: CheckIo): LeaseStore {
  if (!existsSync(db)) throw new Error(`database ${db} does not exist (give --db PATH, or --data-dir DIR of the network)`);
  return LeaseStore.inspect(io.openDriver(db, { readonly: true }));
}

const identity = (p: Problem) => `${p.kind} ${p.address} ${(p.objects ?? []).map((o) => o.name).join(",")}`;
