/**
 * The one way the tests and the benchmarks reach the test API server as
 * admin: a small HTTPS JSON client with the admin token and the test CA from
 * the admin kubeconfig that scripts/testenv.sh writes, one keep-alive agent.
 *
 *   const admin = new AdminClient();
 *   await admin.get(path("pods", { ns, name }));         // undefined if 404
 *   await admin.list(path(CLAIM_PLURAL), { labelSelector: `${POOL_LABEL}=p` });
 *   await admin.apply(manifest);                         // server-side apply
 *   admin.sync.get(...)                                  // the same, blocking
 *
 * `sync` runs the same client in a worker thread and blocks until it answers
 * (Atomics.wait), for the many test helpers that are synchronous; needs the
 * process to run under tsx (as every test and bench does).
 */
import { readFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { type MessagePort, MessageChannel, Worker, isMainThread, receiveMessageOnPort, workerData } from "node:worker_threads";
import {
  BERTH_API_VERSION,
  BERTH_GROUP,
  CLAIM_KIND,
  CLAIM_PLURAL,
  ENDPOINT_KIND,
  ENDPOINT_PLURAL,
  POOL_GROUP,
  POOL_KIND,
  POOL_PLURAL,
  POOL_VERSION,
} from "../../../plugin/kube/crd.ts";
import { sleep } from "../batch.ts";
import { type ControlPlane, controlPlane } from "../control-plane.ts";

// ---------------------------------------------------------------- resources and paths

const CORE = "/api/v1";
const RBAC = "/apis/rbac.authorization.k8s.io/v1";
/** What the tests and benches touch: REST prefix, kind, scope. */
export const RESOURCES = {
  namespaces: { prefix: CORE, kind: "Namespace", namespaced: false },
  nodes: { prefix: CORE, kind: "Node", namespaced: false },
  pods: { prefix: CORE, kind: "Pod", namespaced: true },
  serviceaccounts: { prefix: CORE, kind: "ServiceAccount", namespaced: true },
  secrets: { prefix: CORE, kind: "Secret", namespaced: true },
  events: { prefix: CORE, kind: "Event", namespaced: true },
  statefulsets: { prefix: "/apis/apps/v1", kind: "StatefulSet", namespaced: true },
  leases: { prefix: "/apis/coordination.k8s.io/v1", kind: "Lease", namespaced: true },
  clusterroles: { prefix: RBAC, kind: "ClusterRole", namespaced: false },
  clusterrolebindings: { prefix: RBAC, kind: "ClusterRoleBinding", namespaced: false },
  customresourcedefinitions: { prefix: "/apis/apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", namespaced: false },
  [POOL_PLURAL]: { prefix: `/apis/${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, namespaced: false },
  [CLAIM_PLURAL]: { prefix: `/apis/${BERTH_GROUP}/${BERTH_API_VERSION}`, kind: CLAIM_KIND, namespaced: false },
  [ENDPOINT_PLURAL]: { prefix: `/apis/${BERTH_GROUP}/${BERTH_API_VERSION}`, kind: ENDPOINT_KIND, namespaced: true },
} as const;
export type Resource = keyof typeof RESOURCES;

export type Query = Record<string, string | number | boolean | undefined>;

/** `p` with the query's defined parameters appended. */
export function withQuery(p: string, q: Query = {}): string {
  const s = new URLSearchParams(
    Object.entries(q)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  return s ? `${p}${p.includes("?") ? "&" : "?"}${s}` : p;
}

/**
 * REST path of a collection (no name; a namespaced resource without `ns`:
 * across all namespaces), of one object, or of its subresource.
 */
export function path(resource: Resource, where: { ns?: string; name?: string; sub?: string; query?: Query } = {}): string {
  const r = RESOURCES[resource];
  let p = r.prefix;
  if (r.namespaced && where.ns) p += `/namespaces/${where.ns}`;
  p += `/${resource}`;
  if (where.name !== undefined) p += `/${where.name}`;
  if (where.sub) p += `/${where.sub}`;
  return withQuery(p, where.query);
}

function resourceOf(apiVersion: string, kind: string): Resource {
  const group = apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.lastIndexOf("/")) : "";
  for (const [name, r] of Object.entries(RESOURCES)) {
    const rGroup = r.prefix === CORE ? "" : r.prefix.split("/")[2];
    if (r.kind === kind && rGroup === group) return name as Resource;
  }
  throw new Error(`apply: no REST path known for ${apiVersion} ${kind} (add it to RESOURCES in test/harness/admin-client.ts)`);
}

// ---------------------------------------------------------------- manifests

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

/**
 * The header of a YAML document (apiVersion, kind, metadata.name and
 * .namespace, as plain or quoted scalars); the API server parses the rest.
 */
function yamlHeader(doc: string): Manifest {
  const scalar = (s: string | undefined) => s?.trim().replace(/^(["'])(.*)\1$/, "$2");
  const top = (k: string) => scalar(new RegExp(`^${k}:[ \\t]*(\\S.*)$`, "m").exec(doc)?.[1]);
  const meta = /^metadata:[ \t]*\n((?:(?:[ \t]+.*)?\n?)*)/m.exec(doc)?.[1] ?? "";
  const indent = /^([ \t]+)\S/m.exec(meta)?.[1] ?? "  ";
  const field = (k: string) => scalar(new RegExp(`^${indent}${k}:[ \\t]*(\\S.*)$`, "m").exec(meta)?.[1]);
  const m = { apiVersion: top("apiVersion") ?? "", kind: top("kind") ?? "", metadata: { name: field("name") ?? "", namespace: field("namespace") } };
  if (!m.apiVersion || !m.kind || !m.metadata.name) throw new Error(`apply: no apiVersion, kind or metadata.name found in YAML document:\n${doc}`);
  return m;
}

/** Each object of a manifest (JSON or YAML, `kind: List` unpacked) with the body to send. */
function documents(manifest: string | object): { m: Manifest; body: string }[] {
  const objects = (o: any): { m: Manifest; body: string }[] =>
    o.kind === "List" ? (o.items as any[]).flatMap(objects) : [{ m: o as Manifest, body: JSON.stringify(o) }];
  if (typeof manifest !== "string") return objects(manifest);
  const text = manifest.trim();
  if (text.startsWith("{") || text.startsWith("[")) return objects(JSON.parse(text));
  return text
    .split(/^---[ \t]*$/m)
    .filter((d) => /\S/.test(d.replace(/^\s*#.*$/gm, "")))
    .map((d) => ({ m: yamlHeader(d), body: d }));
}

// ---------------------------------------------------------------- the client

export interface ApiResult<T = any> {
  status: number;
  body: T;
}

/** A response with an unexpected status. */
export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    const why = typeof body === "string" ? body : ((body as { message?: string })?.message ?? JSON.stringify(body));
    super(`${method} ${path}: ${status} ${String(why).slice(0, 500)}`);
  }
}

export interface AdminOptions {
  /** Concurrent connections (default unlimited). */
  maxSockets?: number;
  /** Per request (default 30 s). */
  timeoutMs?: number;
  /** Retry 429 and 5xx answers (up to 5 attempts) in `must` and the verbs built on it. */
  retryServerErrors?: boolean;
  /** Default: controlPlane(). */
  plane?: ControlPlane;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: "Background" | "Foreground" | "Orphan";
}

export type PatchType = "merge" | "json" | "strategic";
const PATCH_TYPES: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
};
export const FIELD_MANAGER = "berth-test";

export class AdminClient {
  readonly plane: ControlPlane;
  private readonly agent: Agent;
  private readonly token: string;
  private syncBridge?: SyncBridge;

  constructor(readonly options: AdminOptions = {}) {
    this.plane = options.plane ?? controlPlane();
    // testenv.sh's own kubeconfig: the token and the CA file inline.
    const kc = readFileSync(this.plane.adminKubeconfig, "utf8");
    this.token = /^\s*token:\s*(\S+)/m.exec(kc)?.[1] ?? "";
    const ca = /^\s*certificate-authority:\s*(\S+)/m.exec(kc)?.[1];
    if (!this.token || !ca) throw new Error(`${this.plane.adminKubeconfig}: no token or certificate-authority`);
    this.agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? Infinity, ca: readFileSync(ca) });
  }

  /** One request (JSON in; JSON out, or text when the answer is not JSON). Never throws on an HTTP status. */
  request<T = any>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<ApiResult<T>> {
    // Content-Length always: Node sends a DELETE's body without one (no chunked encoding by default for DELETE),
    // and the API server then ignores it (the DeleteOptions) and reads it as the next request on the connection.
    const payload = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    const headers = {
      authorization: `Bearer ${this.token}`,
      accept: "application/json, */*",
      ...(payload ? { "content-type": contentType, "content-length": String(payload.length) } : {}),
    };
    const timeout = this.options.timeoutMs ?? 30_000;
    return new Promise((done, fail) => {
      const req = httpsRequest(new URL(path, this.plane.server), { method, agent: this.agent, headers, timeout }, (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (data += d));
        res.on("end", () => {
          let parsed: unknown = data;
          if (data && /json/.test(res.headers["content-type"] ?? "")) {
            try {
              parsed = JSON.parse(data);
            } catch {
              // keep the text
            }
          }
          done({ status: res.statusCode ?? 0, body: (data ? parsed : undefined) as T });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer in ${timeout / 1000} s`)));
      req.on("error", fail);
      req.end(payload);
    });
  }

  /**
   * `request` until the answer is final: a 403 naming a ServiceAccount (a
   * brand-new namespace without its default one yet: ServiceAccount
   * admission) is retried for up to 10 s, 429 and 5xx up to 5 times if
   * `retryServerErrors`. Throws ApiError unless the status is 2xx or in `ok`.
   */
  private async send<T>(method: string, path: string, body: unknown, ok: number[], contentType?: string): Promise<ApiResult<T>> {
    for (let attempt = 1; ; attempt++) {
      const r = await this.request<T>(method, path, body, contentType);
      if ((r.status >= 200 && r.status < 300) || ok.includes(r.status)) return r;
      if (r.status === 403 && /serviceaccount/i.test(JSON.stringify(r.body)) && attempt < 50) {
        await sleep(200);
        continue;
      }
      if (this.options.retryServerErrors && (r.status === 429 || r.status >= 500) && attempt < 5) {
        await sleep(200 * attempt);
        continue;
      }
      throw new ApiError(method, path, r.status, r.body);
    }
  }

  /** The answer's body; throws ApiError unless the status is 2xx or one of `ok` (retries as described at `send`). */
  async must<T = any>(method: string, path: string, body?: unknown, ok: number[] = [], contentType?: string): Promise<T> {
    return (await this.send<T>(method, path, body, ok, contentType)).body;
  }

  /** The object, or undefined when it does not exist. */
  async get<T = any>(path: string): Promise<T | undefined> {
    const r = await this.send<T>("GET", path, undefined, [404]);
    return r.status === 404 ? undefined : r.body;
  }

  /** A collection's items (optionally by label or field selector). */
  async list<T = any>(path: string, query: { labelSelector?: string; fieldSelector?: string; limit?: number } = {}): Promise<T[]> {
    // Items of a list may lack kind and apiVersion (built-in ones do): filled in from the list's, as kubectl does.
    const l = await this.must<{ apiVersion?: string; kind?: string; items: T[] }>("GET", withQuery(path, query));
    const kind = l.kind?.replace(/List$/, "");
    return l.items.map((o: any) => (o && typeof o === "object" && !o.kind && kind ? { apiVersion: l.apiVersion, kind, ...o } : o));
  }

  create<T = any>(path: string, body: unknown): Promise<T> {
    return this.must<T>("POST", path, body);
  }

  /** PATCH (merge by default); `ok` as for `must`. */
  patch<T = any>(path: string, patch: unknown, type: PatchType = "merge", ok: number[] = []): Promise<T> {
    return this.must<T>("PATCH", path, patch, ok, PATCH_TYPES[type]);
  }

  /** DELETE of one object or (a collection path) of all that match; false when it did not exist. */
  async delete(path: string, options?: DeleteOptions): Promise<boolean> {
    const body = options ? { apiVersion: "v1", kind: "DeleteOptions", ...options } : undefined;
    return (await this.send("DELETE", path, body, [404])).status !== 404;
  }

  /**
   * Server-side apply of every object in `manifest` (a JSON or YAML string,
   * several YAML documents, `kind: List`, or an object): created if missing,
   * the given fields set if not. Returns the objects as stored.
   */
  async apply(manifest: string | object): Promise<any[]> {
    const out = [];
    for (const { m, body } of documents(manifest)) {
      const r = resourceOf(m.apiVersion, m.kind);
      const ns = RESOURCES[r].namespaced ? (m.metadata.namespace ?? "default") : undefined;
      out.push(
        await this.must(
          "PATCH",
          path(r, { ns, name: m.metadata.name, query: { fieldManager: FIELD_MANAGER, force: true } }),
          body,
          [],
          "application/apply-patch+yaml",
        ),
      );
    }
    return out;
  }

  /** The same verbs, blocking: run by a client in a worker thread. */
  get sync(): SyncAdmin {
    this.syncBridge ??= new SyncBridge(this.plane, this.options);
    return this.syncBridge.verbs;
  }

  /** Closes the keep-alive connections (and the sync worker). */
  close(): void {
    this.agent.destroy();
    this.syncBridge?.close();
  }
}

// ---------------------------------------------------------------- the blocking mirror

const SYNC_VERBS = ["request", "must", "get", "list", "create", "patch", "delete", "apply"] as const;

/** AdminClient's verbs, each blocking until the answer is there. */
export interface SyncAdmin {
  request<T = any>(method: string, path: string, body?: unknown, contentType?: string): ApiResult<T>;
  must<T = any>(method: string, path: string, body?: unknown, ok?: number[], contentType?: string): T;
  get<T = any>(path: string): T | undefined;
  list<T = any>(path: string, query?: { labelSelector?: string; fieldSelector?: string; limit?: number }): T[];
  create<T = any>(path: string, body: unknown): T;
  patch<T = any>(path: string, patch: unknown, type?: PatchType, ok?: number[]): T;
  delete(path: string, options?: DeleteOptions): boolean;
  apply(manifest: string | object): any[];
}

interface Reply {
  id: number;
  value?: unknown;
  error?: { message: string; api?: { method: string; path: string; status: number; body: unknown } };
}

class SyncBridge {
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private seq = 0;
  private broken?: string;
  readonly verbs: SyncAdmin;

  constructor(
    plane: ControlPlane,
    private readonly options: AdminOptions,
  ) {
    const { port1, port2 } = new MessageChannel();
    // A worker does not inherit tsx's loader: register it there, then load this very module.
    // If that fails, say so at once (id -1) rather than leave the main thread waiting.
    const boot = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })
      .catch(async (e) => { const { workerData: d } = await import("node:worker_threads"); d.port.postMessage({ id: -1, error: { message: "admin client worker failed to start: " + (e?.stack ?? e) } });
        const f = new Int32Array(d.flag); Atomics.store(f, 0, 1); Atomics.notify(f, 0); })`;
    const { plane: _omit, ...opts } = options;
    this.worker = new Worker(boot, {
      eval: true,
      workerData: { berthAdminSync: true, port: port2, flag: this.flag.buffer, plane, options: opts },
      transferList: [port2],
    });
    this.worker.unref();
    this.port = port1;
    this.port.unref();
    this.verbs = Object.fromEntries(SYNC_VERBS.map((v) => [v, (...args: unknown[]) => this.call(v, args)])) as unknown as SyncAdmin;
  }

  private call(verb: string, args: unknown[]): unknown {
    const id = ++this.seq;
    this.port.postMessage({ id, verb, args });
    // The first call also waits for the worker to start (tsx, this module): allow for that.
    const limit = (this.options.timeoutMs ?? 30_000) * 2 + 30_000;
    const deadline = Date.now() + limit;
    let reply: Reply | undefined;
    for (;;) {
      // Cleared before looking: a reply posted after the look sets it again, so the wait cannot miss it.
      Atomics.store(this.flag, 0, 0);
      reply = receiveMessageOnPort(this.port)?.message as Reply | undefined;
      if (reply?.id === -1) this.broken = reply.error!.message;
      if (this.broken) throw new Error(this.broken);
      if (reply?.id === id) break;
      if (reply) continue; // the answer to an earlier call that timed out
      if (Date.now() >= deadline) throw new Error(`admin client worker: no answer to ${verb} ${String(args[0] ?? "")} in ${limit / 1000} s`);
      Atomics.wait(this.flag, 0, 0, deadline - Date.now());
    }
    if (reply.error?.api) {
      const a = reply.error.api;
      throw new ApiError(a.method, a.path, a.status, a.body);
    }
    if (reply.error) throw new Error(reply.error.message);
    return reply.value;
  }

  close(): void {
    void this.worker.terminate();
  }
}

// In the worker: serve the main thread's calls with a client of our own.
if (!isMainThread && (workerData as { berthAdminSync?: boolean })?.berthAdminSync) {
  const { port, flag, plane, options } = workerData as { port: MessagePort; flag: SharedArrayBuffer; plane: ControlPlane; options: AdminOptions };
  const client = new AdminClient({ ...options, plane });
  const f = new Int32Array(flag);
  port.on("message", async ({ id, verb, args }: { id: number; verb: (typeof SYNC_VERBS)[number]; args: unknown[] }) => {
    let reply: Reply;
    try {
      reply = { id, value: await (client[verb] as (...a: unknown[]) => Promise<unknown>)(...args) };
    } catch (err) {
      const e = err as Error;
      reply = {
        id,
        error: { message: e.message, api: e instanceof ApiError ? { method: e.method, path: e.path, status: e.status, body: e.body } : undefined },
      };
    }
    port.postMessage(reply);
    Atomics.store(f, 0, 1);
    Atomics.notify(f, 0);
  });
}
