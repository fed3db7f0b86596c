/**
 * Keeps SpiderIPPool status counts true. Counts are derived, never the
 * allocation's source of truth, so a failure here is logged, not fatal.
 */
import type { Logger } from "../support/logger.ts";
import type { KubeApi } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import { toPool } from "./pool-choice.ts";

/**
 * Up to this many addresses, the count is recounted from the pool's claims
 * (exact, heals any drift). Above it, a LIST would cost more than the ADD it
 * follows, so the stored count moves by the delta instead.
 */
export const EXACT_COUNT_LIMIT = 4096n;

/** Applies `delta` (claims created minus deleted) to each pool's status; retries on conflict. */
export async function updatePoolCounts(api: KubeApi, deltas: Map<string, number>, log: Logger): Promise<void> {
  await Promise.all(
    [...deltas].map(async ([name, delta]) => {
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          const obj = await api.getPool(name);
          if (!obj) return; // deleted meanwhile: nothing to count
          const pool = toPool(obj);
          const allocatedIPCount =
            pool.total <= EXACT_COUNT_LIMIT ? (await api.listClaims(name, true)).length : Math.max(0, (obj.status?.allocatedIPCount ?? 0) + delta);
          const status = { ipVersion: pool.family, allocatedIPCount, totalIPCount: Number(pool.total) };
          const s = obj.status ?? {};
          if (s.ipVersion === status.ipVersion && s.allocatedIPCount === status.allocatedIPCount && s.totalIPCount === status.totalIPCount) return;
          await api.patchPoolStatus(name, obj.metadata.resourceVersion!, status);
          return;
        } catch (err) {
          if (isKind(err, KubeConflictError)) continue;
          log.warn("pool status not updated", { pool: name, error: (err as Error).message });
          return;
        }
      }
      log.warn("pool status not updated: too many concurrent writers", { pool: name });
    }),
  );
}

/** Accumulates per-pool deltas over one command. */
export class CountDeltas {
  readonly deltas = new Map<string, number>();

  add(pool: string, delta: number): void {
    this.deltas.set(pool, (this.deltas.get(pool) ?? 0) + delta);
  }
}
