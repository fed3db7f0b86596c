/**
 * The pool finalizer from the first ADD. A pool deleted with its addresses
 * still claimed must stay (Terminating) until they are released, or the
 * claims outlive it and its addresses can be handed out again once a pool
 * of the same range comes back. The controller adds the finalizer, but not
 * at once, and not while no replica leads (a failover takes 8 s or more). So
 * the first ADD that takes an address from a pool without it adds it,
 * before the claim is written: one write per pool, ever, since every later
 * ADD reads the pool with the finalizer on.
 */
import { IpamError } from "../ipam/ipam-error.ts";
import { POOL_FINALIZER } from "../kube/crd.ts";
import type { ClaimObject, KubeApi, PoolObject } from "../kube/kube-api.ts";
import { KubeConflictError, KubeUnreachableError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";

/** Writes of the finalizer tried before giving up (each lost race or lost answer is read back first). */
const ATTEMPTS = 4;

/**
 * `api` as an ADD uses it, except that a claim is written only once its
 * pool carries the finalizer. The pools the ADD read (getPool, listPools)
 * are remembered, so a pool that has it costs nothing more.
 */
export function withPoolFinalizer(api: KubeApi, log: Logger): KubeApi {
  const seen = new Map<string, PoolObject>();
  const done = new Set<string>();
  const remember = (pool: PoolObject | undefined) => {
    if (pool) seen.set(pool.metadata.name, pool);
    return pool;
  };
  const ensure = async (claim: ClaimObject, creating: boolean) => {
    const name = claim.spec.pool;
    if (done.has(name)) return;
    await ensureFinalizer(api, seen.get(name) ?? (await api.getPool(name)), name, creating, log);
    done.add(name);
  };
  const overrides: Partial<KubeApi> = {
    getPool: async (name) => remember(await api.getPool(name)),
    listPools: async () => (await api.listPools()).map((p) => remember(p)!),
    createClaim: async (claim) => {
      await ensure(claim, true);
      return api.createClaim(claim);
    },
    updateClaim: async (claim) => {
      await ensure(claim, false);
      return api.updateClaim(claim);
    },
  };
  return new Proxy(api, {
    get(target, prop) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof KubeApi];
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/**
 * Makes sure `pool` (as last read) carries the finalizer. Safe when several
 * ADDs race: each write is conditional on the resourceVersion read, so the
 * loser gets a conflict, reads the pool again and finds the winner's entry;
 * never two entries. A write whose answer is lost is read back the same way.
 * A pool being deleted cannot take a new finalizer (the API server refuses):
 * a new claim there is refused (try again: the next ADD sees the pool
 * deleting and skips it), while a bound member's existing claim may be
 * re-taken, as before.
 */
async function ensureFinalizer(api: KubeApi, first: PoolObject | undefined, name: string, creating: boolean, log: Logger): Promise<void> {
  let pool = first;
  for (let attempt = 1; ; attempt++) {
    if (!pool) throw new IpamError("try-again", `SpiderIPPool ${name} was deleted while this ADD ran`);
    if (pool.metadata.finalizers?.includes(POOL_FINALIZER)) return;
    if (pool.metadata.deletionTimestamp) {
      if (!creating) return;
      throw new IpamError(
        "try-again",
        `SpiderIPPool ${name} is being deleted (since ${pool.metadata.deletionTimestamp}) without berth's finalizer ${POOL_FINALIZER}: it takes no new addresses`,
      );
    }
    try {
      await api.addPoolFinalizer(pool);
      log.info("pool finalizer added", { pool: name, finalizer: POOL_FINALIZER });
      return;
    } catch (err) {
      // A lost race (the pool changed, or was deleted, since it was read) or a lost answer: what it says now decides.
      if (!(isKind(err, KubeConflictError) || isKind(err, KubeUnreachableError)) || attempt >= ATTEMPTS) throw err;
      log.debug("pool finalizer write not confirmed; reading the pool again", { pool: name, error: (err as Error).message });
    }
    pool = await api.getPool(name);
  }
}
