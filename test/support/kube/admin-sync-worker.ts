/**
 * The worker thread behind `admin.sync` (admin-sync.ts): serves the main
 * thread's calls with an admin client of its own, and wakes the main thread
 * after each answer.
 */
import { isMainThread, workerData } from "node:worker_threads";
import { AdminClient } from "./admin-client.ts";
import type { SyncReply, SyncVerb, SyncWorkerData } from "./admin-sync.ts";
import { ApiError } from "./api-error.ts";

if (!isMainThread) {
  const { port, flag, plane, options } = workerData as SyncWorkerData;
  const client = new AdminClient({ ...options, plane });
  const f = new Int32Array(flag);
  port.on("message", async ({ id, verb, args }: { id: number; verb: SyncVerb; args: unknown[] }) => {
    let reply: SyncReply;
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
