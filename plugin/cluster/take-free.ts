/**
 * Taking a free address: candidates come from the hints (free-candidates.ts);
 * each is tried by creating its claim, and AlreadyExists means "someone has
 * it" — the one place that answer is turned into "try the next".
 *
 * No LIST in the steady state: a node LISTs a pool's claims (label-selected,
 * from the API server's watch cache) the first time it allocates from the
 * pool, after repeated AlreadyExists, and when the hints know every address
 * as taken — the last is also the only way to code 100 (exhausted), so a
 * full pool is declared full on a LIST of that pool's claims alone, never on
 * one that reads every claim of the cluster from etcd.
 */
import type { Family } from "../ipam/ip.ts";
import { formatAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import type { Pool } from "../ipam/pool.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import { crashIf } from "../support/faults.ts";
import type { AddState, Claiming, Taken } from "./add-state.ts";
import { sleep, waitAfterConflictMs } from "./backoff.ts";
import { claimFor } from "./claims.ts";
import { freeCandidates, randomStart } from "./free-candidates.ts";
import { recordPending } from "./pending-lease.ts";
import { expireStaleLeases } from "./stale-leases.ts";

/**
 * Up to this many addresses a node LISTs a pool's claims before its first
 * allocation there (one LIST per node and pool, then the hints follow the
 * node's own creates and conflicts). Above it, a LIST would cost more than
 * the probes it saves: random addresses are tried first.
 */
export const LIST_FIRST_LIMIT = 4096n;
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
  const usage: string[] = [];
  for (const pool of pools) {
    const t = await takeFromPool(s, pool);
    if ("address" in t) return t;
    usage.push(`${pool.name} (${t.claimed} of ${pool.total} claimed)`);
  }
  throw new IpamError(
    "exhausted",
    pools.length === 1 ? `IPv${family} pool ${usage[0].replace(" (", " exhausted (")}` : `every IPv${family} pool exhausted: ${usage.join(", ")}`,
    `pod ${holder.namespace}/${holder.name}, container ${holder.containerId}, interface ${holder.ifname}`,
  );
}

/**
 * A free address of one pool, or, when it is full, how many claims the LIST
 * that showed it found. A large pool is never LISTed up front: listing tens
 * of thousands of claims costs seconds. Its ADDs probe random addresses the
 * hints do not know as taken; each AlreadyExists teaches the hints. At 90%
 * full that is ~10 creates, not a LIST. Hints are never refreshed for age
 * alone: stale ones cost a conflict (taken meanwhile) or skip an address
 * (freed meanwhile), never a wrong answer, since the create decides and
 * "full" is only said after a LIST. Only many conflicts in a row, or finding
 * nothing, make an ADD LIST.
 */
async function takeFromPool(s: Claiming, pool: Pool): Promise<Taken | { claimed: number }> {
  if (pool.total === 0n) return { claimed: 0 };
  const { store } = s;
  const large = pool.total > LIST_FIRST_LIMIT;
  let refreshed = false;
  let claimed = 0;
  const refresh = async () => {
    claimed = (await refreshHints(s, pool)).length;
    refreshed = true;
  };
  if (!large && store.hints.listedAt(pool.name) === undefined) await refresh();
  const isTaken = (v: bigint) => store.hints.hintedOrLeased(s.conf.name, pool.name, formatAddress(pool.family, v));
  const start = randomStart(pool);
  const conflictsPerRefresh = large ? CONFLICTS_BEFORE_REFRESH * 8 : CONFLICTS_BEFORE_REFRESH;
  let conflicts = 0;
  let staleChecked = false;
  for (;;) {
    s.deadline.check();
    let sawConflicts = false;
    const probing = large && !refreshed;
    for (const value of freeCandidates(pool, isTaken, start, probing)) {
      s.deadline.check();
      const outcome = await tryClaim(s, pool, formatAddress(pool.family, value));
      if (typeof outcome === "object") return outcome;
      if (outcome !== "claimed") continue;
      s.stats.conflicts++;
      // Others may be racing for this pool: let them get ahead before the next create (not after a random probe's miss).
      await sleep(waitAfterConflictMs(++conflicts, s.deadline.leftMs(), probing));
      if (conflicts % conflictsPerRefresh === 0 && !refreshed) {
        await refresh();
        sawConflicts = true;
        break; // a fresh view: candidates start again, now without random probes
      }
    }
    if (sawConflicts) continue;
    if (!refreshed) {
      await refresh(); // no candidate left as this node sees it: a LIST of the pool's claims first
      continue;
    }
    // The LIST agrees, but this node's own leases may keep off addresses no claim stands behind: an ADD that
    // is over (killed, never followed by its DEL), a sandbox gone without DEL (stale-leases.ts). Once per pool.
    if (!staleChecked) {
      staleChecked = true;
      if ((await expireStaleLeases(s, pool)) > 0) continue;
    }
    return { claimed }; // full
  }
}

/**
 * Tries to take `address`: a pending lease, then its claim. "held-here" when
 * another attachment on this node has it (its lease already marks it for
 * `hintedOrLeased`), "claimed" when the API server says someone does
 * (AlreadyExists), which the hints learn. A created claim's hint is written
 * with the lease's activation (cluster-add.ts), one commit instead of two;
 * until then the pending lease keeps this node's other ADDs off it.
 */
async function tryClaim(s: Claiming, pool: Pool, address: string): Promise<Taken | "held-here" | "claimed"> {
  const { api, store } = s;
  const leaseId = recordPending(s, pool, address);
  if (leaseId === undefined) return "held-here";
  crashIf("kill-after-pending");
  try {
    const created = await api.createClaim(claimFor(pool.family, address, pool.name, s.holder));
    crashIf("kill-after-claim");
    // Register the undo first: whatever fails from here on must give the claim back.
    s.undo.push(`delete claim ${created.metadata.name}`, async () => {
      const freed = await api.deleteClaim(created.metadata.name, created.metadata.uid!);
      store.immediate(() => {
        store.deleteLease(leaseId);
        if (freed) store.hints.set(pool.name, address, false);
      });
    });
    return { family: pool.family, address, pool, leaseId };
  } catch (err) {
    if (!isKind(err, KubeConflictError)) throw err; // the pending lease stays: DEL or the next ADD resolves it
    // Not fsynced: the hint is a cache, and a pending lease that comes back after a power cut
    // is undone like any interrupted ADD's (DEL, GC or the next ADD), which delete only a claim
    // this container holds. The next durable commit (the next pending lease) carries it anyway.
    store.cacheWrite(() => {
      store.deleteLease(leaseId);
      store.hints.set(pool.name, address, true);
    });
    return "claimed";
  }
}

/**
 * Replaces the pool's hints with the watch cache's view (only this pool's
 * claims, by label): a moment stale at worst, which hints tolerate (the
 * create decides). Returns the claims it found.
 */
export async function refreshHints(s: AddState, pool: Pool): Promise<ClaimObject[]> {
  const claims = await s.api.listClaims(pool.name);
  s.store.cacheWrite(() =>
    s.store.hints.replace(
      pool.name,
      claims.map((c) => c.spec.address),
    ),
  );
  return claims;
}
