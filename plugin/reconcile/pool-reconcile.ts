/** Keeps a pool's counts true and its deletion safe (a finalizer holds it while addresses are claimed). */

import { toPool } from "../cluster/pool-choice.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import { POOL_FINALIZER } from "../kube/crd.ts";
import type { PoolObject } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import type { ReconcileCounters } from "./counters.ts";

export interface PoolView {
  /**
   * How many claims name this pool in the controller's view; undefined when
   * that view is not complete (before the first full scan of this term, or a
   * scan whose claims list failed): then only the finalizer is added.
   */
  claimed: number | undefined;
  /**
   * Whether a deleting pool may lose its finalizer: only on complete data
   * (the first full scan of this leadership term has listed every claim).
   * Even then it goes only if a fresh read of the pool's claims finds none.
   */
  mayRemoveFinalizer: boolean;
  /**
   * false: counts only, the finalizer left as it is (`berth check --repair`
   * rewrites counts; the pool's deletion guard is the controller's).
   */
  finalizer?: boolean;
}

/** Adds the finalizer, removes it from a deleted pool that is empty, writes the counts. */
export async function reconcilePool(api: ControllerApi, name: string, view: PoolView, log: Logger, metrics: ReconcileCounters): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const pool = await api.getPool(name);
    if (!pool) {
      metrics.forgetPool(name);
      return;
    }
    try {
      if (view.finalizer !== false && (await finalize(api, pool, view, log))) continue; // metadata changed: read again for the status write
      const claimed = view.claimed;
      if (claimed === undefined) return;
      let total: number;
      let family: number;
      try {
        const p = toPool(pool);
        total = Number(p.total);
        family = p.family;
      } catch (err) {
        log.warn("pool spec invalid; counts not updated", { pool: name, error: (err as Error).message });
        return;
      }
      metrics.pool(name, total, claimed);
      const s = pool.status ?? {};
      if (s.allocatedIPCount !== claimed || s.totalIPCount !== total || s.ipVersion !== family) {
        await api.patchPoolStatus(name, pool.metadata.resourceVersion!, { ipVersion: family, allocatedIPCount: claimed, totalIPCount: total });
      }
      return;
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err;
    }
  }
}

/** Adds the finalizer to a live pool, removes it from a deleted one that is empty. Returns whether it wrote. */
async function finalize(api: ControllerApi, pool: PoolObject, view: PoolView, log: Logger): Promise<boolean> {
  const fin = pool.metadata.finalizers ?? [];
  const has = fin.includes(POOL_FINALIZER);
  const name = pool.metadata.name;
  if (!pool.metadata.deletionTimestamp && !has) {
    await api.setPoolFinalizers(pool, [...fin, POOL_FINALIZER]);
    return true;
  }
  if (!pool.metadata.deletionTimestamp || !has) return false;
  if (view.claimed === 0 && view.mayRemoveFinalizer) {
    // Confirmed on a fresh, consistent read of the pool's claims, not only on memory.
    const live = await api.listClaims(name, true);
    if (live.length === 0) {
      await api.setPoolFinalizers(
        pool,
        fin.filter((f) => f !== POOL_FINALIZER),
      );
      log.info("pool deleted: no address claimed any more", { pool: name });
      return true;
    }
    log.info("pool deletion waits for its addresses", { pool: name, claimed: live.length });
    return false;
  }
  log.info("pool deletion waits for its addresses", { pool: name, claimed: view.claimed ?? "unknown (not every claim listed yet)" });
  return false;
}
