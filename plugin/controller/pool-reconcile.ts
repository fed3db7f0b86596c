/** Keeps a pool's counts true and its deletion safe (a finalizer holds it while addresses are claimed). */
import { POOL_FINALIZER } from "../kube/crd.ts";
import type { PoolObject } from "../kube/kube-api.ts";
import { toPool } from "../cluster/pool-choice.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import type { Metrics } from "./metrics.ts";

/** `claimed`: how many claims name this pool, from the controller's fresh view. */
export async function reconcilePool(api: ControllerApi, name: string, claimed: number, log: Logger, metrics: Metrics): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const pool = await api.getPool(name);
    if (!pool) {
      metrics.forgetPool(name);
      return;
    }
    try {
      if (await finalize(api, pool, claimed, log)) continue; // metadata changed: read again for the status write
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
async function finalize(api: ControllerApi, pool: PoolObject, claimed: number, log: Logger): Promise<boolean> {
  const fin = pool.metadata.finalizers ?? [];
  const has = fin.includes(POOL_FINALIZER);
  if (!pool.metadata.deletionTimestamp && !has) {
    await api.setPoolFinalizers(pool, [...fin, POOL_FINALIZER]);
    return true;
  }
  if (pool.metadata.deletionTimestamp && has && claimed === 0) {
    await api.setPoolFinalizers(pool, fin.filter((f) => f !== POOL_FINALIZER));
    log.info("pool deleted: no address claimed any more", { pool: pool.metadata.name });
    return true;
  }
  if (pool.metadata.deletionTimestamp && has) log.info("pool deletion waits for its addresses", { pool: pool.metadata.name, claimed });
  return false;
}
