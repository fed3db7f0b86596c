/**
 * Phase 3 of the cluster section: C fresh pods spread over node1..3, each
 * node with its own dataDir and fresh hints, C ADDs spawned at once; wall
 * time first spawn → last exit. The same for the peer, when there is one.
 */
import { NODES } from "../../../test/support/control-plane.ts";
import { fail, inBatches, span, type Timed } from "../lib.ts";
import { C, CONC, P_CONC, PEER } from "./config.ts";
import { peerCycle } from "./fresh-pods.ts";
import { peerAllocations } from "./peer.ts";
import { addressOf, type Ctx, cni, failures, inPool, newContainer, type PodRef, parseAddress, peerCall, peerHas, warnings } from "./plugin.ts";

/** One round's figures: whether every ADD succeeded with distinct addresses, the wall, each ADD's time, failed ADDs. */
export interface Round {
  ok: boolean;
  wall: number;
  each: number[];
  failed: number;
}

/** berth's rounds also keep the warnings its ADDs logged. */
export type BerthRound = Round & { warnings: string[] };

/** C fresh pods of pool bench-conc, spread over the nodes. */
async function roundPods(ctx: Ctx, prefix: string): Promise<PodRef[]> {
  const names = Array.from({ length: C }, (_, i) => `${prefix}-${i}`);
  const uids = await inBatches(names, 8, (name, i) => ctx.api.createPod(name, CONC.name, NODES[i % NODES.length]));
  return names.map((name, i) => ({ name, uid: uids[i], node: NODES[i % NODES.length] }));
}

/** Phase 3: C fresh pods spread over node1..3, C ADDs spawned at once; wall time first spawn → last exit. */
export async function concurrentRound(ctx: Ctx, round: number): Promise<BerthRound> {
  const pods = await roundPods(ctx, `conc-${round}`);
  // Each node has just run a pod of this pool (hints fresh), as a busy node would have.
  for (const node of NODES) {
    const name = `conc-${round}-prime-${node}`;
    const p = { name, uid: await ctx.api.createPod(name, CONC.name, node), node };
    const id = newContainer();
    addressOf(`priming ADD on ${node}`, await cni(ctx, "ADD", id, p));
    await ctx.api.forceDeletePod(name);
    const d = await cni(ctx, "DEL", id, p);
    if (d.status !== 0) fail(`priming DEL on ${node}`, d);
  }
  const ids = pods.map(() => newContainer());
  const rs = await Promise.all(pods.map((p, i) => cni(ctx, "ADD", ids[i], p)));
  const wall = span(rs);
  const warns = rs.flatMap(warnings);
  const { ok, failed } = judgeBurst(`concurrent round ${round + 1}`, rs, pods, (a) => inPool(CONC, a));
  await tearDown(ctx, `concurrent round ${round + 1}`, pods, ids, (id, p) => cni(ctx, "DEL", id, p));
  const left = await ctx.api.poolClaims(CONC.name);
  if (left.length)
    failures.push(`concurrent round ${round + 1}: ${left.length} claim(s) of ${CONC.name} left after every DEL: ${left.map((c) => c.address).join(", ")}`);
  return { ok, wall, each: rs.map((r) => r.ms), warnings: warns, failed };
}

/** A burst's ADDs judged: all succeeded, with C distinct addresses in the pool? Problems go to `failures`. */
function judgeBurst(label: string, rs: Timed[], pods: PodRef[], has: (a: string) => boolean): { ok: boolean; failed: number } {
  const parsed = rs.map(parseAddress);
  const bad = parsed.map((p, i) => ({ p, i })).filter(({ p }) => !p.address);
  const addrs = parsed.map((p) => p.address).filter((a): a is string => !!a);
  let ok = true;
  if (bad.length) {
    failures.push(`${label}: ${bad.length} of ${rs.length} ADDs failed; first (${pods[bad[0].i].node}): ${bad[0].p.why}`);
    ok = false;
  } else if (new Set(addrs).size !== rs.length || addrs.some((a) => !has(a))) {
    failures.push(`${label}: ${rs.length} ADDs returned ${new Set(addrs).size} distinct addresses (${addrs.join(", ")})`);
    ok = false;
  }
  if (!ok) console.error(`!! ${failures[failures.length - 1]}`);
  return { ok, failed: bad.length };
}

/** Cleans up a burst (not timed): pods gone, then their DELs, 3 at a time. */
async function tearDown(ctx: Ctx, label: string, pods: PodRef[], ids: string[], del: (id: string, p: PodRef) => Promise<Timed>): Promise<void> {
  await inBatches(pods, 8, (p) => ctx.api.forceDeletePod(p.name));
  await inBatches(
    pods.map((p, i) => ({ p, id: ids[i] })),
    3,
    async ({ p, id }) => {
      const d = await del(id, p);
      if (d.status !== 0) failures.push(`${label}: DEL of ${p.name} on ${p.node} failed: ${d.stdout.trim()}`);
    },
  );
}

/** Phase 3 for the peer: C fresh pods over node1..3, one primed ADD+DEL first (its IPPool exists), C ADDs at once. */
export async function peerConcurrentRound(ctx: Ctx, round: number): Promise<Round> {
  const pods = await roundPods(ctx, `wb-conc-${round}`);
  const prime = { name: `wb-conc-${round}-prime`, uid: await ctx.api.createPod(`wb-conc-${round}-prime`, CONC.name, "node1"), node: "node1" };
  await peerCycle(ctx, P_CONC, prime);
  const ids = pods.map(() => newContainer());
  const rs = await Promise.all(pods.map((p, i) => peerCall(ctx, P_CONC, "ADD", ids[i], p)));
  const wall = span(rs);
  const { ok, failed } = judgeBurst(`${PEER} concurrent round ${round + 1}`, rs, pods, (a) => peerHas(P_CONC, a));
  await tearDown(ctx, `${PEER} concurrent round ${round + 1}`, pods, ids, (id, p) => peerCall(ctx, P_CONC, "DEL", id, p));
  const held = await peerAllocations(ctx.api, [P_CONC]);
  if (held) failures.push(`${PEER} concurrent round ${round + 1}: ${held} address(es) of ${P_CONC.range} still held after every DEL`);
  return { ok, wall, each: rs.map((r) => r.ms), failed };
}

/** Phase 3: ROUNDS rounds, berth and the peer (if any) alternating which goes first, round by round. */
export async function concurrentRounds(ctx: Ctx, rounds: number): Promise<{ rounds: BerthRound[]; peerRounds: Round[] }> {
  const rs: BerthRound[] = [];
  const peerRounds: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    if (ctx.peer && r % 2 === 1) peerRounds.push(await peerConcurrentRound(ctx, r));
    rs.push(await concurrentRound(ctx, r));
    if (ctx.peer && r % 2 === 0) peerRounds.push(await peerConcurrentRound(ctx, r));
  }
  return { rounds: rs, peerRounds };
}
