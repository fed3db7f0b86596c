/**
 * Taking a free address: candidates come from the hints (free-candidates.ts);
 * each is tried by creating its claim, and AlreadyExists means "someone has
 * it" — the one place that answer is turned into "try the next".
 */
import type { Family } from "../ipam/ip.ts";
import { formatAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import type { Pool } from "../ipam/pool.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import { crashIf } from "../support/faults.ts";
import type { AddState, Claiming, Taken } from "./add-state.ts";
import { claimFor } from "./claims.ts";
import { freeCandidates, randomStart } from "./free-candidates.ts";
import { recordPending } from "./pending-lease.ts";
import { EXACT_COUNT_LIMIT } from "./pool-counts.ts";

/** Hints older than this are refreshed from a full LIST before they are used. */
export const HINT_TTL_MS = 30_000;
/** After this many AlreadyExists in a row, the hints are refreshed. */
const CONFLICTS_BEFORE_REFRESH = 8;

/** Claims a free address from the first pool that has one; `exhausted` when none has. */
export async function takeFree(s: Claiming, family: Family, candidates: Pool[]): Promise<Taken> {
  const { holder } = s;
  // A pool being deleted keeps serving the pods bound to it, and takes no new ones.
  const pools = candidates.filter((p) => !p.deleting);
  if (pools.length === 0) {
    throw new IpamError(
      "no-pool",
      `no IPv${family} pool can serve pod ${holder.namespace}/${holder.name}: ${candidates.map((p) => p.name).join(", ")} being deleted`,
    );
  }
  for (const pool of pools) {
    const t = await takeFromPool(s, pool);
    if (t) return t;
  }
  const usage = await Promise.all(pools.map(async (p) => `${p.name} (${(await s.api.listClaims(p.name, true)).length} of ${p.total} claimed)`));
  throw new IpamError(
    "exhausted",
    pools.length === 1 ? `IPv${family} pool ${usage[0].replace(" (", " exhausted (")}` : `every IPv${family} pool exhausted: ${usage.join(", ")}`,
    `pod ${holder.namespace}/${holder.name}, container ${holder.containerId}, interface ${holder.ifname}`,
  );
}

/**
 * A free address of one pool, or undefined when it is full. A large pool is
 * never LISTed up front: listing tens of thousands of claims costs seconds.
 * Its ADDs probe random addresses the hints do not know as taken; each
 * AlreadyExists teaches the hints. At 90% full that is ~10 creates, not a
 * LIST. Only many conflicts in a row, or finding nothing, make it LIST once,
 * and exhaustion is declared only after that.
 */
async function takeFromPool(s: Claiming, pool: Pool): Promise<Taken | undefined> {
  if (pool.total === 0n) return undefined;
  const { store } = s;
  const large = pool.total > EXACT_COUNT_LIMIT;
  let refreshed = false;
  const refresh = async () => {
    await refreshHints(s, pool);
    refreshed = true;
  };
  const listedAt = store.hintsListedAt(pool.name);
  if (!large && (listedAt === undefined || Date.now() - listedAt > HINT_TTL_MS)) await refresh();
  const isTaken = (v: bigint) => store.hintedTaken(pool.name, formatAddress(pool.family, v));
  const start = randomStart(pool);
  const conflictsPerRefresh = large ? CONFLICTS_BEFORE_REFRESH * 8 : CONFLICTS_BEFORE_REFRESH;
  let conflicts = 0;
  for (;;) {
    s.deadline.check();
    let sawConflicts = false;
    for (const value of freeCandidates(pool, isTaken, start, large && !refreshed)) {
      s.deadline.check();
      const outcome = await tryClaim(s, pool, formatAddress(pool.family, value));
      if (typeof outcome === "object") return outcome;
      if (outcome === "claimed" && ++conflicts % conflictsPerRefresh === 0 && !refreshed) {
        await refresh();
        sawConflicts = true;
        break; // a fresh view: candidates start again, now without random probes
      }
    }
    if (sawConflicts) continue;
    if (refreshed) return undefined; // a fresh LIST agrees: the pool is full
    await refresh();
  }
}

/**
 * Tries to take `address`: a pending lease, then its claim. "held-here" when
 * another attachment on this node has it, "claimed" when the API server says
 * someone does (AlreadyExists); either way the hints learn it is taken.
 */
async function tryClaim(s: Claiming, pool: Pool, address: string): Promise<Taken | "held-here" | "claimed"> {
  const { api, store } = s;
  const leaseId = recordPending(s, pool, address);
  if (leaseId === undefined) {
    store.setHint(pool.name, address, true);
    return "held-here";
  }
  try {
    const created = await api.createClaim(claimFor(pool.family, address, pool.name, s.holder));
    s.counts.add(pool.name, 1);
    crashIf("kill-after-claim");
    // Register the undo first: whatever fails from here on must give the claim back.
    s.undo.push(`delete claim ${created.metadata.name}`, async () => {
      if (await api.deleteClaim(created.metadata.name, created.metadata.uid!)) {
        s.counts.add(pool.name, -1);
        store.setHint(pool.name, address, false);
      }
      store.deleteLease(leaseId);
    });
    store.setHint(pool.name, address, true);
    return { family: pool.family, address, pool, leaseId };
  } catch (err) {
    if (!isKind(err, KubeConflictError)) throw err; // the pending lease stays: DEL or the next ADD resolves it
    store.immediate(() => {
      store.deleteLease(leaseId);
      store.setHint(pool.name, address, true);
    });
    return "claimed";
  }
}

/** Replaces the pool's hints with the watch cache's view: a moment stale at worst, which hints tolerate (the create decides). */
async function refreshHints(s: AddState, pool: Pool): Promise<void> {
  const claims = await s.api.listClaims(pool.name);
  s.store.immediate(() =>
    s.store.replaceHints(
      pool.name,
      claims.map((c) => c.spec.address),
    ),
  );
}
