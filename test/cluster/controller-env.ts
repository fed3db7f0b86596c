/**
 * Machinery of the controller end-to-end tests (test/cluster/controller*.test.ts),
 * on top of cluster-env.ts. Not a test file itself.
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
 * - A plain HTTPS client with the admin token (adminApi) for tests that need
 *   many API calls fast; kubectl for the rest.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import * as assert from "uvu/assert";
import {
  type ClusterScope,
  type ScopeOptions,
  type SimNode,
  getJson,
  kc,
  kubectl,
  waitFor,
  withCluster,
} from "./cluster-env.ts";
import { BERTH, cli } from "../helpers/berth.ts";
import { APISERVER, TESTENV_DIR } from "../helpers/testenv.ts";

export const CONTROLLER_KUBECONFIG = process.env.BERTH_CONTROLLER_KUBECONFIG || join(TESTENV_DIR, "controller.kubeconfig");
export const LEASE_NS = "kube-system";
export const LEASE_NAME = "berth-controller";
export const POOL_FINALIZER = "ipam.berth.dev/pool-in-use";

// ---------------------------------------------------------------- waiting

/** waitFor with an async check. */
export async function waitForAsync<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- controller processes

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Release {
  address: string;
  pool: string;
  pod: string;
  reason: string;
  claim: string;
  line: string;
}

const running = new Set<ControllerProc>();
/** Every controller started in this process, in order. */
const everStarted: ControllerProc[] = [];
process.on("exit", () => {
  for (const c of running) if (c.alive) c.child.kill("SIGKILL");
});

export interface ControllerOptions {
  identity: string;
  resyncSeconds?: number;
  addTimeoutSeconds?: number;
  /** Directory for its log file (a scope temp dir). */
  logDir?: string;
}

export class ControllerProc {
  private out = "";
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly identity: string, readonly port: number, readonly child: ChildProcess) {
    child.stdout!.on("data", (d) => (this.out += d));
    child.stderr!.on("data", (d) => (this.out += d));
    this.exited = new Promise((done) => child.on("exit", (code, signal) => {
      this.exit = { code, signal };
      running.delete(this);
      done(this.exit);
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Everything it logged so far. */
  log(): string {
    return this.out;
  }

  logTail(lines = 25): string {
    return this.out.trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** Its "address released" log lines, parsed. */
  releases(filter: (r: Release) => boolean = () => true): Release[] {
    const out: Release[] = [];
    for (const line of this.out.split("\n")) {
      if (!line.includes(" address released ")) continue;
      const f = (k: string) => new RegExp(`\\b${k}=(\\S+)`).exec(line)?.[1] ?? "";
      const r = { address: f("address"), pool: f("pool"), pod: f("pod"), reason: f("reason"), claim: f("claim"), line };
      if (filter(r)) out.push(r);
    }
    return out;
  }

  /**
   * Waits until `count` release lines match (a line is logged after the claim
   * and the endpoint entry are gone, so a test that saw the claim go may be
   * ahead of it), then a moment more so a duplicate would show; returns them.
   */
  async waitReleases(filter: (r: Release) => boolean, count: number, timeoutMs = 5000): Promise<Release[]> {
    await waitForAsync(`${count} release line(s) in controller ${this.identity}'s log (have ${this.releases(filter).length})\n${this.logTail()}`, async () => this.releases(filter).length >= count, timeoutMs, 50);
    await sleep(300);
    return this.releases(filter);
  }

  /** Waits until a log line matches. */
  async waitLog(re: RegExp, timeoutMs = 5000): Promise<string> {
    return waitForAsync(`controller ${this.identity} to log ${re}\n${this.logTail()}`, async () => this.out.split("\n").find((l) => re.test(l)), timeoutMs, 50);
  }

  private async get(path: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`GET ${path} on controller ${this.identity}: ${res.status}`);
    return res.text();
  }

  /** /metrics as name{labels} → value. */
  async metrics(): Promise<Map<string, number>> {
    const m = new Map<string, number>();
    for (const line of (await this.get("/metrics")).split("\n")) {
      const x = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)$/.exec(line.trim());
      if (x) m.set(x[1], Number(x[2]));
    }
    return m;
  }

  async metric(key: string): Promise<number | undefined> {
    return (await this.metrics()).get(key);
  }

  /** 1/0 from berth_controller_leader, or undefined if it does not answer. */
  async leader(): Promise<number | undefined> {
    if (!this.alive) return undefined;
    return this.metric("berth_controller_leader").catch(() => undefined);
  }

  /** Full scans done so far (berth_reconcile_duration_seconds_count). */
  async scans(): Promise<number> {
    return (await this.metric("berth_reconcile_duration_seconds_count")) ?? 0;
  }

  async waitLeader(timeoutMs = 15_000): Promise<void> {
    await waitForAsync(`controller ${this.identity} to report berth_controller_leader 1\n${this.logTail()}`, async () => (await this.leader()) === 1, timeoutMs, 100);
  }

  /** Waits until `n` more full scans have finished. */
  async waitScans(n: number, timeoutMs = 20_000): Promise<void> {
    const target = (await this.scans()) + n;
    await waitForAsync(`controller ${this.identity} to finish ${n} more full scan(s)\n${this.logTail()}`, async () => (await this.scans()) >= target, timeoutMs, 100);
  }

  /** SIGTERM; expects a clean exit 0 (it hands the lease over first). */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.alive) return;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const e = await this.exited;
    clearTimeout(t);
    assert.equal(e, { code: 0, signal: null }, `controller ${this.identity} exits 0 on SIGTERM\n${this.logTail()}`);
  }

  /** SIGKILL, as a node dying takes it; resolves once it is gone. */
  async kill(): Promise<void> {
    if (!this.alive) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }
}

/** Starts `berth controller` with the controller's ServiceAccount; resolves once /healthz answers. */
export async function startController(o: ControllerOptions): Promise<ControllerProc> {
  assert.ok(existsSync(CONTROLLER_KUBECONFIG), `${CONTROLLER_KUBECONFIG} is missing: run scripts/testenv.sh up (it writes the controller's kubeconfig)`);
  const port = await freePort();
  const args = [
    "controller", "--kubeconfig", CONTROLLER_KUBECONFIG, "--listen", `127.0.0.1:${port}`,
    "--resync-seconds", String(o.resyncSeconds ?? 3), "--add-timeout-seconds", String(o.addTimeoutSeconds ?? 5), "--identity", o.identity,
  ];
  const child = spawn(BERTH, args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdio: ["ignore", "pipe", "pipe"] });
  const c = new ControllerProc(o.identity, port, child);
  running.add(c);
  everStarted.push(c);
  await waitForAsync(`controller ${o.identity} to answer /healthz on 127.0.0.1:${port}`, async () => {
    if (!c.alive) throw new Error(`controller ${o.identity} exited ${JSON.stringify(c.exit)}:\n${c.logTail()}`);
    const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
    return r?.ok;
  }, 15_000, 50);
  return c;
}

/** Stops every controller the tests started (SIGTERM; SIGKILL after 10 s). Returns problems, never throws. */
export async function stopAllControllers(): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all([...running].map(async (c) => {
    try {
      await c.stop(10_000);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }));
  return problems;
}

// ---------------------------------------------------------------- lease, finalizers, events

export interface Lease {
  spec: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number; leaseTransitions?: number };
}

export function lease(): Lease | undefined {
  return getJson<Lease>(["-n", LEASE_NS, "lease", LEASE_NAME]);
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
  const ours = new Set([...running].map((c) => c.identity));
  try {
    await waitFor("the controller lease to be free", () => {
      const h = liveHolder();
      return !h || ours.has(h);
    }, 12_000, 500);
  } catch {
    throw new Error(`another berth controller (identity ${JSON.stringify(liveHolder())}) holds lease ${LEASE_NS}/${LEASE_NAME}: the controller tests need the control plane to themselves`);
  }
}

/** Removes the controller's finalizer from every pool that has it (after our controllers stopped). Returns the pools. */
export function stripPoolFinalizers(): string[] {
  const pools = (JSON.parse(kc(["get", "sp", "-o", "json"])) as { items: { metadata: { name: string; finalizers?: string[] } }[] }).items;
  const done: string[] = [];
  for (const p of pools) {
    const i = p.metadata.finalizers?.indexOf(POOL_FINALIZER) ?? -1;
    if (i < 0) continue;
    const patch = [{ op: "test", path: `/metadata/finalizers/${i}`, value: POOL_FINALIZER }, { op: "remove", path: `/metadata/finalizers/${i}` }];
    const r = kubectl(["patch", "sp", p.metadata.name, "--type", "json", "-p", JSON.stringify(patch)]);
    if (r.status === 0 || /NotFound|not found/.test(r.stderr)) done.push(p.metadata.name);
    else throw new Error(`removing ${POOL_FINALIZER} from pool ${p.metadata.name} failed: ${r.stderr.trim()}`);
  }
  return done;
}

/** The pool's finalizers, or undefined when the pool does not exist. */
export function poolFinalizers(pool: string): string[] | undefined {
  const p = getJson<{ metadata: { finalizers?: string[] } }>(["sp", pool]);
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
  const items = (JSON.parse(kc(["-n", ns, "get", "events", "-o", "json"])) as { items: KEvent[] }).items;
  return reason ? items.filter((e) => e.reason === reason) : items;
}

// ---------------------------------------------------------------- the node database

export interface NodeLease {
  address: string;
  container_id: string;
  state: string;
  pod_name: string | null;
}

export function leasesOn(node: SimNode): NodeLease[] {
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
    await waitFor(`pools ${opts.pools.join(", ")} of an earlier run to be gone`, () => opts.pools.every((p) => !getJson(["sp", p])), 20_000, 250);
    const first = everStarted.length;
    try {
      await fn(c);
    } catch (err) {
      for (const p of everStarted.slice(first)) console.error(`\n[${opts.tag}] controller ${p.identity} (pid ${p.pid}, ${p.alive ? "running" : `exited ${JSON.stringify(p.exit)}`}), last lines:\n${p.logTail(40)}\n`);
      throw err;
    } finally {
      const problems = await stopAllControllers();
      try {
        stripPoolFinalizers();
      } catch (err) {
        problems.push((err as Error).message);
      }
      if (problems.length) console.error(`[${opts.tag}] stopping controllers: ${problems.join("\n")}`);
    }
  });
}

// ---------------------------------------------------------------- the API as admin, without kubectl

const agent = new Agent({ keepAlive: true, maxSockets: 16, ca: existsSync(join(TESTENV_DIR, "pki/ca.crt")) ? readFileSync(join(TESTENV_DIR, "pki/ca.crt")) : undefined });
let adminToken: string | undefined;

export interface ApiResult<T = any> {
  status: number;
  body: T;
}

/** One request to the API server as admin (JSON in, JSON out). Never throws on an HTTP error status. */
export function adminApi<T = any>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<ApiResult<T>> {
  adminToken ??= readFileSync(join(TESTENV_DIR, "admin.token"), "utf8").trim();
  const url = new URL(path, APISERVER);
  // Content-Length always: Node sends a DELETE's body without one (no chunked encoding by default for DELETE),
  // and the API server then ignores it (the DeleteOptions) and reads it as the next request on the connection.
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers = { authorization: `Bearer ${adminToken}`, accept: "application/json", ...(payload ? { "content-type": contentType, "content-length": String(payload.length) } : {}) };
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers, timeout: 30_000 }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => {
        let parsed: unknown = data;
        try {
          parsed = data ? JSON.parse(data) : undefined;
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed as T });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** adminApi that throws unless the status is 2xx (or one of `ok`). */
export async function adminMust<T = any>(method: string, path: string, body?: unknown, ok: number[] = [], contentType?: string): Promise<T> {
  const r = await adminApi<T>(method, path, body, contentType);
  if ((r.status < 200 || r.status >= 300) && !ok.includes(r.status)) {
    throw new Error(`${method} ${path}: ${r.status} ${typeof r.body === "string" ? r.body : (r.body as { message?: string })?.message ?? JSON.stringify(r.body)}`);
  }
  return r.body;
}

export const CLAIMS_PATH = "/apis/ipam.berth.dev/v1alpha1/berthipclaims";
export const endpointsPath = (ns: string) => `/apis/ipam.berth.dev/v1alpha1/namespaces/${ns}/berthendpoints`;
export const podsPath = (ns: string) => `/api/v1/namespaces/${ns}/pods`;
