/**
 * The admin client's verbs, blocking: `admin.sync.get(...)`. A client of the
 * same options runs in a worker thread (admin-sync-worker.ts); each call
 * posts the verb to it and waits (Atomics.wait) until its answer is there.
 * For the many test helpers that are synchronous; needs the process to run
 * under tsx (as every test and bench does), since the worker loads the
 * TypeScript module through it.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import type { ControlPlane } from "../control-plane.ts";
import type { AdminOptions, DeleteOptions, PatchType } from "./admin-client.ts";
import { ApiError, type ApiResult } from "./api-error.ts";

/** The verbs the worker serves. */
export const SYNC_VERBS = ["request", "must", "get", "list", "create", "replace", "patch", "delete", "apply"] as const;
export type SyncVerb = (typeof SYNC_VERBS)[number];

/** AdminClient's verbs, each blocking until the answer is there. */
export interface SyncAdmin {
  request<T = any>(method: string, path: string, body?: unknown, contentType?: string): ApiResult<T>;
  must<T = any>(method: string, path: string, body?: unknown, ok?: number[], contentType?: string): T;
  get<T = any>(path: string): T | undefined;
  list<T = any>(path: string, query?: { labelSelector?: string; fieldSelector?: string; limit?: number }): T[];
  create<T = any>(path: string, body: unknown): T;
  replace<T = any>(path: string, body: unknown): T;
  patch<T = any>(path: string, patch: unknown, type?: PatchType, ok?: number[]): T;
  delete(path: string, options?: DeleteOptions): boolean;
  apply(manifest: string | object): any[];
}

/** What the worker posts back for call `id` (id -1: it failed to start). */
export interface SyncReply {
  id: number;
  value?: unknown;
  error?: { message: string; api?: { method: string; path: string; status: number; body: unknown } };
}

/** What the worker is started with. */
export interface SyncWorkerData {
  port: MessagePort;
  flag: SharedArrayBuffer;
  plane: ControlPlane;
  options: Omit<AdminOptions, "plane">;
}

/** The main thread's side: one worker, one port, one flag to wait on. */
export class SyncBridge {
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
    // A worker does not inherit tsx's loader: register it there, then load the worker's module.
    // If that fails, say so at once (id -1) rather than leave the main thread waiting.
    const entry = new URL("./admin-sync-worker.ts", import.meta.url).href;
    const boot = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })
      .catch(async (e) => { const { workerData: d } = await import("node:worker_threads"); d.port.postMessage({ id: -1, error: { message: "admin client worker failed to start: " + (e?.stack ?? e) } });
        const f = new Int32Array(d.flag); Atomics.store(f, 0, 1); Atomics.notify(f, 0); })`;
    const { plane: _omit, ...opts } = options;
    const workerData: SyncWorkerData = { port: port2, flag: this.flag.buffer as SharedArrayBuffer, plane, options: opts };
    this.worker = new Worker(boot, { eval: true, workerData, transferList: [port2] });
    this.worker.unref();
    this.port = port1;
    this.port.unref();
    this.verbs = Object.fromEntries(SYNC_VERBS.map((v) => [v, (...args: unknown[]) => this.call(v, args)])) as unknown as SyncAdmin;
  }

  private call(verb: string, args: unknown[]): unknown {
    const id = ++this.seq;
    this.port.postMessage({ id, verb, args });
    // The first call also waits for the worker to start (tsx, the client's modules): allow for that.
    const limit = (this.options.timeoutMs ?? 30_000) * 2 + 30_000;
    const deadline = Date.now() + limit;
    let reply: SyncReply | undefined;
    for (;;) {
      // Cleared before looking: a reply posted after the look sets it again, so the wait cannot miss it.
      Atomics.store(this.flag, 0, 0);
      reply = receiveMessageOnPort(this.port)?.message as SyncReply | undefined;
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
