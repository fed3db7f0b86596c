/**
 * The one API client of the tests and the benchmarks: the test API server as
 * admin, through a small HTTPS JSON client with the admin token and the test
 * CA from the admin kubeconfig that scripts/testenv.sh writes, one
 * keep-alive agent. kubectl (kubectl.ts) runs only where a test checks what
 * kubectl itself prints or does.
 *
 *   const admin = new AdminClient();
 *   await admin.get<PodObject>(path("pods", { ns, name }));  // undefined if 404
 *   await admin.list<ClaimObject>(path(CLAIM_PLURAL), { labelSelector: `${POOL_LABEL}=p` });
 *   await admin.apply(manifest);                              // server-side apply
 *   admin.sync.get(...)                                       // the same, blocking
 *
 * Paths come from api-paths.ts; the objects' types are the product's
 * (plugin/kube/kube-api.ts). `sync` is the same client in a worker thread,
 * blocking until it answers (admin-sync.ts), for the many test helpers that
 * are synchronous.
 */
import { readFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { sleep } from "../batch.ts";
import { type ControlPlane, controlPlane } from "../control-plane.ts";
import { type SyncAdmin, SyncBridge } from "./admin-sync.ts";
import { ApiError, type ApiResult } from "./api-error.ts";
import { path, RESOURCES, resourceOf, withQuery } from "./api-paths.ts";
import { documents } from "./manifests.ts";

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
  /** Deleted only if the object still has these (as berth's own deletes send them). */
  preconditions?: { uid?: string; resourceVersion?: string };
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

  /** PUT: the whole object replaced (metadata.resourceVersion, when set, must still be the server's). */
  replace<T = any>(path: string, body: unknown): Promise<T> {
    return this.must<T>("PUT", path, body);
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

  /** The same verbs, blocking: run by a client of the same options in a worker thread. */
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
