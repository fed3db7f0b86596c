/**
 * Machinery of the controller end-to-end tests (test/cluster/controller*.test.ts
 * and the other files that run `berth controller`), on top of cluster-env.ts.
 *
 * - `berth controller` runs as a real process (the same private copy of
 *   dist/berth the plugin calls use), with the controller's least-privilege
 *   ServiceAccount kube-system/berth-controller (never admin), on
 *   127.0.0.1:<free port>, logging to a file in the scope's temp dir.
 * - The controller acts cluster-wide and there is one Lease
 *   (kube-system/berth-controller): a test refuses to start while someone
 *   else's controller holds it, and every controller a test starts is stopped
 *   (SIGTERM, else SIGKILL) whatever happens; a process exit hook kills any
 *   left (by pid).
 * - The controller puts the finalizer ipam.berth.dev/pool-in-use on every
 *   pool; once the test's controllers are stopped, withControllers removes it
 *   from every pool that still has it, so nobody's pool deletion hangs.
 * - The API as admin through the one admin client (../kube/admin-client.ts):
 *   `admin`'s async verbs for tests that need many calls at once, its
 *   blocking `admin.sync` in the helpers here.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import type { LeaseObject, NodeObject } from "../../../plugin/kube/controller-api.ts";
import { POOL_FINALIZER, POOL_PLURAL } from "../../../plugin/kube/crd.ts";
import type { Lease } from "../../../store/rows.ts";
import { waitFor as poll, sleep } from "../batch.ts";
import { BERTH, cli } from "../berth.ts";
import { controlPlane } from "../control-plane.ts";
import { ControllerProcess, type Exit, runningControllers } from "../controller-process.ts";
import { tokenOf } from "../kube/kubeconfig-token.ts";
import {
  admin,
  apply,
  type ClusterScope,
  claimNameOf,
  claimOf,
  getPool,
  listPools,
  path,
  podArgs,
  podUid,
  type ScopeOptions,
  type SimNode,
  waitFor,
  withCluster,
} from "./cluster-env.ts";

export const CONTROLLER_KUBECONFIG = controlPlane().controllerKubeconfig;
export const LEASE_NS = "kube-system";
export const LEASE_NAME = "berth-controller";
export { POOL_FINALIZER, sleep };

const api = admin.sync;

// ---------------------------------------------------------------- waiting

/** waitFor with an async check; an error it throws counts as "not yet" (the last one is named on timeout). */
export function waitForAsync<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  return poll(what, fn, { timeoutMs, everyMs, retryErrors: true });
}

// ---------------------------------------------------------------- controller processes

export interface Release {
  /** When the line was logged (ms since the epoch). */
  time: number;
  address: string;
  pool: string;
  pod: string;
  reason: string;
  claim: string;
  line: string;
}

/** Every controller started in this process, in order. */
const everStarted: ControllerProc[] = [];

export interface ControllerOptions {
  identity: string;
  resyncSeconds?: number;
  addTimeoutSeconds?: number;
  /** More flags (e.g. --list-page-size 2). */
  args?: string[];
  /** BERTH_FAULT (plugin/support/faults.ts). */
  faults?: string;
  /** Directory for its log file (a scope temp dir). */
  logDir?: string;
  /** Another kubeconfig for the controller's ServiceAccount (e.g. through a fault proxy: `controllerToken()`). */
  kubeconfig?: string;
}

/** A `berth controller` process (test/support/controller-process.ts) with what the tests read of it. */
export class ControllerProc extends ControllerProcess {
  /** Its "address released" log lines, parsed. */
  releases(filter: (r: Release) => boolean = () => true): Release[] {
    const out: Release[] = [];
    for (const line of this.log().split("\n")) {
      const e = logEntry(line);
      if (e?.msg !== "address released") continue;
      const f = (k: string) => String(e[k] ?? "");
      const r = { time: Date.parse(f("time")), address: f("address"), pool: f("pool"), pod: f("pod"), reason: f("reason"), claim: f("claim"), line };
      if (filter(r)) out.push(r);
    }
    return out;
  }

  /** When it first logged a line with this message (ms since the epoch), or undefined. */
  loggedAt(msg: string): number | undefined {
    for (const line of this.log().split("\n")) {
      const e = logEntry(line);
      if (e?.msg === msg) return Date.parse(String(e.time));
    }
    return undefined;
  }

  /**
   * Waits until `count` release lines match (a line is logged after the claim
   * and the endpoint entry are gone, so a test that saw the claim go may be
   * ahead of it), then a moment more so a duplicate would show; returns them.
   */
  async waitReleases(filter: (r: Release) => boolean, count: number, timeoutMs = 5000): Promise<Release[]> {
    await waitForAsync(
      `${count} release line(s) in controller ${this.identity}'s log (have ${this.releases(filter).length})\n${this.logTail()}`,
      async () => this.releases(filter).length >= count,
      timeoutMs,
      50,
    );
    await sleep(300);
    return this.releases(filter);
  }

  /** Waits until a log line matches. */
  async waitLog(re: RegExp, timeoutMs = 5000): Promise<string> {
    return waitForAsync(
      `controller ${this.identity} to log ${re}\n${this.logTail()}`,
      async () =>
        this.log()
          .split("\n")
          .find((l) => re.test(l)),
      timeoutMs,
      50,
    );
  }

  /** 1/0 from berth_controller_leader, or undefined if it does not answer. */
  async leader(): Promise<number | undefined> {
    if (!this.alive) return undefined;
    return this.metric("berth_controller_leader").catch(() => undefined);
  }

  async waitLeader(timeoutMs = 15_000): Promise<void> {
    await waitForAsync(
      `controller ${this.identity} to report berth_controller_leader 1\n${this.logTail()}`,
      async () => (await this.leader()) === 1,
      timeoutMs,
      100,
    );
  }

  /**
   * Waits until the process has finished `total` full scans since it started.
   * After waitLeader, use this (not waitScans) for the scan taken with the
   * lead: a quick first scan may already be done when waitScans counts.
   */
  async waitScanTotal(total: number, timeoutMs = 20_000): Promise<void> {
    await waitForAsync(
      `controller ${this.identity} to have finished ${total} full scan(s)\n${this.logTail()}`,
      async () => (await this.scans()) >= total,
      timeoutMs,
      100,
    );
  }

  /** Waits until `n` more full scans have finished. */
  async waitScans(n: number, timeoutMs = 20_000): Promise<void> {
    const target = (await this.scans()) + n;
    await waitForAsync(
      `controller ${this.identity} to finish ${n} more full scan(s)\n${this.logTail()}`,
      async () => (await this.scans()) >= target,
      timeoutMs,
      100,
    );
  }

  /** SIGTERM; expects a clean exit 0 (it hands the lease over first). */
  override async stop(timeoutMs = 15_000): Promise<Exit> {
    if (!this.alive) return this.exit!;
    const e = await super.stop(timeoutMs);
    assert.equal(e, { code: 0, signal: null }, `controller ${this.identity} exits 0 on SIGTERM\n${this.logTail()}`);
    return e;
  }
}

/**
 * One log line as fields: `time`, `msg` and the key=value pairs after it, or
 * the object of a JSON line; undefined for anything else.
 */
export function logEntry(line: string): Record<string, unknown> | undefined {
  if (line.startsWith("{")) {
    try {
      return JSON.parse(line);
    } catch {
      return undefined;
    }
  }
  const m = /^(\S+) (DEBUG|INFO|WARN|ERROR) (.*)$/.exec(line);
  if (!m) return undefined;
  const rest = m[3];
  const firstField = rest.search(/ [\w.-]+=/);
  const e: Record<string, unknown> = { time: m[1], level: m[2].toLowerCase(), msg: firstField < 0 ? rest : rest.slice(0, firstField) };
  for (const f of rest.slice(firstField < 0 ? rest.length : firstField).matchAll(/ ([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    try {
      e[f[1]] = f[2].startsWith('"') ? JSON.parse(f[2]) : f[2];
    } catch {
      e[f[1]] = f[2];
    }
  }
  return e;
}

/** Starts `berth controller` with the controller's ServiceAccount; resolves once /healthz answers. */
export async function startController(o: ControllerOptions): Promise<ControllerProc> {
  assert.ok(existsSync(CONTROLLER_KUBECONFIG), `${CONTROLLER_KUBECONFIG} is missing: run scripts/testenv.sh up (it writes the controller's kubeconfig)`);
  const c = await ControllerProc.start({
    bin: BERTH,
    kubeconfig: o.kubeconfig ?? CONTROLLER_KUBECONFIG,
    identity: o.identity,
    resyncSeconds: o.resyncSeconds ?? 3,
    addTimeoutSeconds: o.addTimeoutSeconds ?? 5,
    args: o.args,
    faults: o.faults,
  });
  everStarted.push(c);
  return c;
}

/** The controller's ServiceAccount token (from its kubeconfig), for a kubeconfig of one's own (a fault proxy's). */
export function controllerToken(): string {
  return tokenOf(CONTROLLER_KUBECONFIG);
}

/** Stops every controller the tests started (SIGTERM; SIGKILL after 10 s). Returns problems, never throws. */
export async function stopAllControllers(): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all(
    [...runningControllers].map(async (c) => {
      try {
        await c.stop(10_000);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }),
  );
  return problems;
}

// ---------------------------------------------------------------- lease, finalizers, events

/** The controllers' leader lease, or undefined while there is none. */
export function lease(): LeaseObject | undefined {
  return api.get<LeaseObject>(path("leases", { ns: LEASE_NS, name: LEASE_NAME }));
}

/** The lease's holder if it is held and not expired. */
export function liveHolder(): string | undefined {
  const l = lease();
  const h = l?.spec.holderIdentity;
  if (!h) return undefined;
  const renewed = l!.spec.renewTime ? Date.parse(l!.spec.renewTime) : 0;
  return Date.now() <= renewed + (l!.spec.leaseDurationSeconds ?? 8) * 1000 ? h : undefined;
}

/**
 * The controller acts cluster-wide: refuse to run while another `berth
 * controller` holds the lease (waits up to 12 s, in case it is one that died).
 */
export async function assertNoOtherController(): Promise<void> {
  const ours = new Set([...runningControllers].map((c) => c.identity));
  try {
    await waitFor(
      "the controller lease to be free",
      () => {
        const h = liveHolder();
        return !h || ours.has(h);
      },
      12_000,
      500,
    );
  } catch {
    throw new Error(
      `another berth controller (identity ${JSON.stringify(liveHolder())}) holds lease ${LEASE_NS}/${LEASE_NAME}: the controller tests need the control plane to themselves`,
    );
  }
}

/** Removes the controller's finalizer from every pool that has it (after our controllers stopped). Returns the pools. */
export function stripPoolFinalizers(): string[] {
  const done: string[] = [];
  for (const p of listPools()) {
    const i = p.metadata.finalizers?.indexOf(POOL_FINALIZER) ?? -1;
    if (i < 0) continue;
    const patch = [
      { op: "test", path: `/metadata/finalizers/${i}`, value: POOL_FINALIZER },
      { op: "remove", path: `/metadata/finalizers/${i}` },
    ];
    api.patch(path(POOL_PLURAL, { name: p.metadata.name }), patch, "json", [404]);
    done.push(p.metadata.name);
  }
  return done;
}

/** The pool's finalizers, or undefined when the pool does not exist. */
export function poolFinalizers(pool: string): string[] | undefined {
  const p = getPool(pool);
  return p ? (p.metadata.finalizers ?? []) : undefined;
}

export interface KEvent {
  reason: string;
  message: string;
  type: string;
  involvedObject: { kind: string; name: string; uid?: string };
  source?: { component?: string };
}

export function events(ns: string, reason?: string): KEvent[] {
  const items = api.list<KEvent>(path("events", { ns }));
  return reason ? items.filter((e) => e.reason === reason) : items;
}

// ---------------------------------------------------------------- the controller's role

const CONTROLLER_ROLE = path("clusterroles", { name: "berth-controller" });
const CONTROLLER_USER = "system:serviceaccount:kube-system:berth-controller";

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** Whether the controller's ServiceAccount may `verb` `resource` (a SubjectAccessReview). */
export function controllerMay(verb: string, group: string, resource: string): boolean {
  const r = api.create(path("subjectaccessreviews"), {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SubjectAccessReview",
    spec: {
      user: CONTROLLER_USER,
      groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
      resourceAttributes: { verb, group, resource },
    },
  });
  return !!r.status?.allowed;
}

/**
 * Takes `verbs` on `resource` away from the controller's ClusterRole (as an
 * operator who upgraded the controller but not fixtures/rbac.yaml would), and
 * waits until the API server refuses them. Returns the undo, which waits
 * until they are allowed again; withControllers undoes it too.
 */
export async function denyController(group: string, resource: string, verbs: string[]): Promise<() => Promise<void>> {
  const role = api.get<{ rules: Rule[] }>(CONTROLLER_ROLE)!;
  const original = structuredClone(role.rules);
  const rules = role.rules.map((r) =>
    r.apiGroups.includes(group) && r.resources.includes(resource) ? { ...r, verbs: r.verbs.filter((v) => !verbs.includes(v)) } : r,
  );
  api.patch(CONTROLLER_ROLE, { rules });
  await waitFor(`the controller to be refused ${verbs.join(", ")} on ${resource}`, () => verbs.every((v) => !controllerMay(v, group, resource)), 10_000, 100);
  const undo = async () => {
    undos.delete(undo);
    api.patch(CONTROLLER_ROLE, { rules: original });
    await waitFor(
      `the controller to be allowed ${verbs.join(", ")} on ${resource} again`,
      () => verbs.every((v) => controllerMay(v, group, resource)),
      10_000,
      100,
    );
  };
  undos.add(undo);
  return undo;
}
const undos = new Set<() => Promise<void>>();

// ---------------------------------------------------------------- node readiness

/** The file scripts/testenv.sh's heartbeat reads: nodes it leaves alone. */
const HEARTBEAT_PAUSED = join(controlPlane().dir, "heartbeat-paused");

function pausedNodes(): string[] {
  return existsSync(HEARTBEAT_PAUSED) ? readFileSync(HEARTBEAT_PAUSED, "utf8").split("\n").filter(Boolean) : [];
}

/** The node's Ready condition status ("True", "False", "Unknown"), or undefined when it has none. */
export function nodeReady(node: string): string | undefined {
  const n = api.get<NodeObject>(path("nodes", { name: node }));
  return n?.status?.conditions?.find((c) => c.type === "Ready")?.status;
}

/**
 * Cuts `node` off, as a partition would: its heartbeat stops and its Ready
 * condition becomes `status` (what the node lifecycle controller writes
 * when a kubelet stops reporting). Undo with `reconnectNode`.
 */
export function disconnectNode(node: string, status: "Unknown" | "False" = "Unknown"): void {
  writeFileSync(HEARTBEAT_PAUSED, `${[...new Set([...pausedNodes(), node])].join("\n")}\n`);
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  api.patch(
    path("nodes", { name: node, sub: "status" }),
    {
      status: { conditions: [{ type: "Ready", status, reason: "NodeStatusUnknown", message: "berth test: node cut off", lastTransitionTime: now }] },
    },
    "strategic",
  );
  assert.is(nodeReady(node), status, `node ${node} is ${status}`);
}

/** Gives `node` its heartbeat back and makes it Ready at once. */
export function reconnectNode(node: string): void {
  const rest = pausedNodes().filter((n) => n !== node);
  writeFileSync(HEARTBEAT_PAUSED, rest.length ? `${rest.join("\n")}\n` : "");
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  api.patch(
    path("nodes", { name: node, sub: "status" }),
    {
      status: {
        conditions: [
          { type: "Ready", status: "True", reason: "KubeletReady", message: "berth test: node back", lastHeartbeatTime: now, lastTransitionTime: now },
        ],
      },
    },
    "strategic",
  );
}

// ---------------------------------------------------------------- the node database

/** The leases in `node`'s database, as `berth inspect leases -o json` prints them (the store's own rows). */
export function leasesOn(node: SimNode): Lease[] {
  if (!existsSync(join(node.dataDir, "berth.db"))) return [];
  const r = cli(["inspect", "leases", "--db", join(node.dataDir, "berth.db"), "-o", "json"]);
  assert.is(r.status, 0, `berth inspect leases on ${node.name}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// ---------------------------------------------------------------- scopes

/**
 * withCluster plus the controller's rules: no other controller may hold the
 * lease; finalizers a dead run left are removed first (and the file's pools
 * waited out); afterwards every controller started is stopped and no pool
 * keeps the finalizer. On failure the controllers' logs are printed.
 */
export async function withControllers(opts: ScopeOptions & { chain?: boolean }, fn: (c: ClusterScope) => Promise<void>): Promise<void> {
  await withCluster({ chain: false, ...opts }, async (c) => {
    await assertNoOtherController();
    stripPoolFinalizers();
    await waitFor(`pools ${opts.pools.join(", ")} of an earlier run to be gone`, () => opts.pools.every((p) => !getPool(p)), 20_000, 250);
    const first = everStarted.length;
    try {
      await fn(c);
    } catch (err) {
      for (const p of everStarted.slice(first))
        console.error(
          `\n[${opts.tag}] controller ${p.identity} (pid ${p.pid}, ${p.alive ? "running" : `exited ${JSON.stringify(p.exit)}`}), last lines:\n${p.logTail(40)}\n`,
        );
      throw err;
    } finally {
      const problems = await stopAllControllers();
      try {
        stripPoolFinalizers();
        for (const n of pausedNodes()) reconnectNode(n);
        for (const undo of [...undos]) await undo();
      } catch (err) {
        problems.push((err as Error).message);
      }
      if (problems.length) console.error(`[${opts.tag}] stopping controllers: ${problems.join("\n")}`);
    }
  });
}

// ---------------------------------------------------------------- pods and claims, as the controller tests make them

/** The annotation that names a pod's IPv4 pool. */
export const ippool = (pool: string) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) });

/** A plain pod naming `pool`, already on `node` (spec.nodeName); returns its UID. `graceSeconds`: its termination grace period (the API server's default when absent). */
export function plainPod(ns: string, name: string, node: string, pool: string, graceSeconds?: number): string {
  apply(
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns, annotations: ippool(pool) },
      spec: {
        nodeName: node,
        ...(graceSeconds === undefined ? {} : { terminationGracePeriodSeconds: graceSeconds }),
        containers: [{ name: "app", image: "nginx" }],
      },
    }),
  );
  return podUid(ns, name);
}

/** A pod's attachment as the kubelet made it. */
export interface Held {
  ns: string;
  name: string;
  uid: string;
  node: SimNode;
  containerId: string;
  address: string;
}

/** The kubelet's ADD through dist/berth on `node`; asserts success. */
export function add(c: ClusterScope, node: SimNode, ns: string, name: string, uid: string, containerId = randomBytes(32).toString("hex")): Held {
  const o = c.berth("ADD", node, { containerId, args: podArgs(ns, name, uid) });
  assert.is(o.status, 0, `ADD of ${ns}/${name} on ${node.name}: ${o.stdout} ${o.stderr}\n${c.logTail(node)}`);
  return { ns, name, uid, node, containerId, address: o.json.ips[0].address.split("/")[0] };
}

/** Waits until the claim of `address` is gone; returns when (ms since epoch). */
export async function waitReleased(address: string, timeoutMs: number, ctl?: ControllerProc): Promise<number> {
  await waitFor(
    `claim ${claimNameOf(address)} to be released${ctl ? `\ncontroller ${ctl.identity}:\n${ctl.logTail()}` : ""}`,
    () => !claimOf(address),
    timeoutMs,
    100,
  );
  return Date.now();
}
