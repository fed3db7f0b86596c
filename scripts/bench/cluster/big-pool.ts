/**
 * Phase 4 of the cluster section: a /16 pool (bench-big, no ips, above
 * LIST_FIRST_LIMIT so probed, never LISTed up front). ADDs on it empty; then
 * the admin creates claims for FILL_PCT% of it (random addresses, fixed
 * seed); the first ADD after the fill (node1's hints are stale) and the next
 * ones; a small pool's ADDs while the fill is there; then the fill is
 * deleted and the count checked.
 */
import { BERTH_API_VERSION, BERTH_GROUP, CLAIM_KIND, CLAIMS_PATH, POOL_LABEL } from "../../../plugin/kube/crd.ts";
import { ApiError } from "../../../test/support/kube/api-error.ts";
import { nthOf } from "../addresses.ts";
import { BenchFailure, fail, inBatches, sleep } from "../lib.ts";
import type { Admin } from "./admin.ts";
import { BIG, BIG_N, BIG_USABLE, CONC, FILL_PAR, FILL_PCT, NS, SEQ } from "./config.ts";
import { freshPods, tryCycle, tryPods } from "./fresh-pods.ts";
import { type Ctx, failures, runTag } from "./plugin.ts";

type Say = (s: string) => void;

/** Deterministic pseudo-random numbers (mulberry32), so every run fills the same addresses. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FILL_PCT% of the usable addresses, chosen at random (seeded) all over the pool. */
function fillAddresses(): string[] {
  const at = nthOf(BIG.subnet);
  const idx = Array.from({ length: BIG_USABLE }, (_, i) => i + 1);
  const rnd = prng(20261126);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  const count = Math.floor((BIG_USABLE * FILL_PCT) / 100);
  return idx.slice(0, count).map((i) => at(i));
}

const claimName = (address: string) => `v4-${address.replace(/\./g, "-")}`;

/** Creates a claim of pool bench-big for each address, FILL_PAR at a time; returns how long it took, ms. */
async function fill(api: Admin, addresses: string[], say: Say): Promise<number> {
  say(`filling ${BIG.name} with ${addresses.length} BerthIPClaims (${FILL_PCT}% of ${BIG_USABLE}), ${FILL_PAR} requests in parallel ...`);
  const claimedAt = new Date().toISOString();
  let done = 0;
  const tFill = performance.now();
  await inBatches(addresses, FILL_PAR, async (address, i) => {
    const name = claimName(address);
    const body = {
      apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
      kind: CLAIM_KIND,
      metadata: { name, labels: { [POOL_LABEL]: BIG.name } },
      spec: {
        address,
        ipVersion: 4,
        pool: BIG.name,
        podNamespace: NS,
        podName: `fill-${i}`,
        podUID: `fill-${runTag}-${i}`,
        containerID: `bench-fill-${runTag}`,
        interface: "eth0",
        node: "node3",
        claimedAt,
      },
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await api.create(CLAIMS_PATH, body);
        break;
      } catch (err) {
        if (err instanceof ApiError && err.status === 409) throw new BenchFailure(`fill: claim ${name} already exists: someone else holds ${address}`);
        if (attempt >= 5) throw err;
        await sleep(200 * attempt); // 429/5xx/timeouts under load: retry
      }
    }
    if (++done % 10000 === 0) say(`  ${done} claims, ${((performance.now() - tFill) / 1000).toFixed(0)} s`);
  });
  const fillMs = performance.now() - tFill;
  say(`filled in ${(fillMs / 1000).toFixed(1)} s (${(addresses.length / (fillMs / 1000)).toFixed(0)} creates/s)`);
  return fillMs;
}

/**
 * What the LIST by label that berth makes costs on its own (the admin, same selector, no timeout), for this
 * pool and for a pool with no claims at all: the API server reads every claim in the cluster and filters.
 */
async function listWhileFull(api: Admin, count: number, say: Say) {
  const tList = performance.now();
  const listed = (await api.poolClaims(BIG.name)).length;
  const listMs = performance.now() - tList;
  const tList0 = performance.now();
  const listed0 = (await api.poolClaims(CONC.name)).length;
  const list0Ms = performance.now() - tList0;
  say(
    `LIST by the admin while the cluster holds the fill: ${BIG.name}'s claims (${listed}) ${listMs.toFixed(0)} ms, ${CONC.name}'s (${listed0}) ${list0Ms.toFixed(0)} ms`,
  );
  if (listed !== count) fail(`pool ${BIG.name} should hold the ${count} fill claims, it holds ${listed}: is someone else deleting claims?`);
  return { items: listed, ms: listMs, emptyPoolMs: list0Ms };
}

/** ADDs while the pool is full: the first after the fill on its own (it finds out), then the next BIG_N; and a small pool's. */
async function addsWhileFull(ctx: Ctx, say: Say) {
  // node1's hints of the pool predate the fill (they never expire by age since issue 9): the first ADD after it
  // is the one that finds out, by AlreadyExists, that the pool is full.
  const firstPod = { name: "big-full-first", uid: await ctx.api.createPod("big-full-first", BIG.name, "node1"), node: "node1" };
  const t1 = performance.now();
  const first = await tryCycle(ctx, BIG, firstPod);
  if (first.error) say(`!! first ADD after the fill failed after ${((performance.now() - t1) / 1000).toFixed(1)} s: ${first.error}`);
  const steady = await tryPods(ctx, BIG, BIG_N, "big-full", 2);
  const full = { first: first.add, firstDel: first.del ?? NaN, firstError: first.error, ...steady };
  if (steady.errors.length)
    say(`!! ${steady.errors.length} ADD(s) on the full pool failed${steady.gaveUp ? " (gave up after 2 in a row)" : ""}; first: ${steady.errors[0]}`);

  // A small pool while the cluster holds the fill: node1 LISTed it in phase 1, so neither ADD nor DEL LISTs
  // (before issue 9 each recounted the pool by a consistent LIST that read every claim in the cluster).
  const small = await tryPods(ctx, SEQ, 2, "seq-during-fill", 2);
  if (small.errors.length) say(`!! ${small.errors.length} ADD(s) on ${SEQ.name} failed while the cluster held the fill; first: ${small.errors[0]}`);
  return { full, small };
}

/** Deletes the fill's claims, FILL_PAR at a time: how long it took, ms, and how many were already gone. */
async function empty(api: Admin, addresses: string[], say: Say): Promise<{ ms: number; gone: number }> {
  const tClean = performance.now();
  const names = addresses.map(claimName);
  let done = 0;
  let gone = 0;
  await inBatches(names, FILL_PAR, async (name) => {
    for (let attempt = 1; ; attempt++) {
      try {
        if (!(await api.delete(`${CLAIMS_PATH}/${name}`))) gone++;
        break;
      } catch (err) {
        if (attempt >= 5) throw err;
        await sleep(200 * attempt);
      }
    }
    if (++done % 10000 === 0) say(`  deleted ${done}, ${((performance.now() - tClean) / 1000).toFixed(0)} s`);
  });
  return { ms: performance.now() - tClean, gone };
}

/** Phase 4: the /16 pool empty, filled to FILL_PCT% with claims made by the admin, then full. */
export async function bigPool(ctx: Ctx, say: Say) {
  const { api } = ctx;
  const emptyRun = await freshPods(ctx, BIG, BIG_N, "big-empty");
  const statusBefore = await api.poolStatus(BIG.name);
  const addresses = fillAddresses();
  const count = addresses.length;
  const fillMs = await fill(api, addresses, say);
  const list = await listWhileFull(api, count, say);
  const { full, small } = await addsWhileFull(ctx, say);
  const { ms: cleanMs, gone } = await empty(api, addresses, say);
  const after = await api.poolClaims(BIG.name);
  const statusAfter = await api.poolStatus(BIG.name);
  say(
    `deleted the ${count} fill claims in ${(cleanMs / 1000).toFixed(1)} s; ${BIG.name} now has ${after.length} claim(s), status.allocatedIPCount ${statusAfter?.allocatedIPCount} (before the fill: ${statusBefore?.allocatedIPCount})`,
  );
  if (gone) {
    failures.push(
      `${gone} of the ${count} fill claims were already gone at cleanup: someone else deleted them while the pool was meant to be ${FILL_PCT}% full`,
    );
    console.error(`!! ${failures[failures.length - 1]}`);
  }
  if (after.length !== 0) fail(`after deleting the fill, pool ${BIG.name} still has ${after.length} claims`);
  return {
    empty: emptyRun,
    full,
    small,
    fill: { claims: count, ms: fillMs, parallel: FILL_PAR },
    clean: {
      ms: cleanMs,
      claimsAfter: after.length,
      goneBefore: gone,
      allocatedBefore: statusBefore?.allocatedIPCount,
      allocatedAfter: statusAfter?.allocatedIPCount,
    },
    list,
  };
}
