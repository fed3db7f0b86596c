/**
 * Phase 1 of the cluster section, and the pod cycles the other phases reuse:
 * a fresh pod's ADD, its deletion, its DEL (the release path), for berth and
 * the peer; and the baselines of phase 1 (a repeated ADD answered from the
 * node database, CNI VERSION).
 */
import { logged } from "../../../test/support/log-lines.ts";
import { BenchFailure, childCpuMs, fail, inBatches, timed } from "../lib.ts";
import { N, NS, PEER, type PoolDef, SEQ, WARMUP } from "./config.ts";
import { type PeerRange, peerAllocations } from "./peer.ts";
import { addressOf, type Ctx, cni, failures, inPool, newContainer, type PodRef, peerCall, peerHas } from "./plugin.ts";

/**
 * One fresh pod's life as its node sees it: ADD (timed), the pod deleted
 * (force, not timed), DEL (timed: the release path). `del` is undefined when
 * someone else (a berth controller running against this control plane) freed
 * the claim first: that DEL took a shorter path and is left out of the figures.
 */
export async function podCycle(ctx: Ctx, pool: PoolDef, pod: PodRef): Promise<{ add: number; del?: number; address: string; addCpu: number }> {
  const id = newContainer();
  const cpu0 = childCpuMs();
  const a = await cni(ctx, "ADD", id, pod);
  const addCpu = childCpuMs() - cpu0;
  const address = addressOf(`ADD of fresh pod ${NS}/${pod.name} (pool ${pool.name})`, a);
  if (!inPool(pool, address)) fail(`ADD of ${NS}/${pod.name} returned ${address}, outside pool ${pool.name}`);
  await ctx.api.forceDeletePod(pod.name);
  const d = await cni(ctx, "DEL", id, pod);
  if (d.status !== 0) fail(`DEL of deleted pod ${NS}/${pod.name}`, d);
  const released = logged(d.stderr, "address released").length > 0;
  if (!released && logged(d.stderr, "address already released").length === 0)
    fail(`DEL of deleted pod ${NS}/${pod.name} neither released ${address} nor found it released`, d);
  return { add: a.ms, del: released ? d.ms : undefined, address, addCpu };
}

/** The peer's fresh pod: ADD (timed, CPU counted), the pod force-deleted, DEL (timed). */
export async function peerCycle(ctx: Ctx, r: PeerRange, pod: PodRef): Promise<{ add: number; del: number; addCpu: number }> {
  const id = newContainer();
  const cpu0 = childCpuMs();
  const a = await peerCall(ctx, r, "ADD", id, pod);
  const addCpu = childCpuMs() - cpu0;
  const address = addressOf(`${PEER} ADD of fresh pod ${NS}/${pod.name}`, a);
  if (!peerHas(r, address)) fail(`${PEER} ADD of ${NS}/${pod.name} returned ${address}, outside ${r.range}`);
  await ctx.api.forceDeletePod(pod.name);
  const d = await peerCall(ctx, r, "DEL", id, pod);
  if (d.status !== 0) fail(`${PEER} DEL of deleted pod ${NS}/${pod.name}`, d);
  return { add: a.ms, del: d.ms, addCpu };
}

/** podCycle that records a failed ADD instead of aborting (phase 4, where the API server may give up on big LISTs). */
export async function tryCycle(ctx: Ctx, pool: PoolDef, pod: PodRef): Promise<{ add: number; del?: number; error?: string }> {
  try {
    return await podCycle(ctx, pool, pod);
  } catch (err) {
    if (!(err instanceof BenchFailure)) throw err;
    await ctx.api.forceDeletePod(pod.name);
    return { add: NaN, error: err.message.replace(/\s+/g, " ").slice(0, 600) };
  }
}

/** Up to n pods, one tryCycle each; stops after `giveUp` failed ADDs in a row (each may cost a request timeout). */
export async function tryPods(ctx: Ctx, pool: PoolDef, n: number, label: string, giveUp = 3) {
  const add: number[] = [];
  const del: number[] = [];
  const errors: string[] = [];
  let inARow = 0;
  for (let i = 0; i < n && inARow < giveUp; i++) {
    const name = `${label}-${i}`;
    const pod = { name, uid: await ctx.api.createPod(name, pool.name, "node1"), node: "node1" };
    const r = await tryCycle(ctx, pool, pod);
    if (r.error) {
      errors.push(r.error);
      inARow++;
      continue;
    }
    inARow = 0;
    add.push(r.add);
    if (r.del !== undefined) del.push(r.del);
  }
  return { add, del, errors, gaveUp: inARow >= giveUp };
}

/**
 * Phase 1 (and 4): n pre-created plain pods on node1 (plus `warmup` left out of the figures), one podCycle each.
 * With `peer` (phase 1), each iteration also runs one peerCycle on a pod of its own, alternating which goes first.
 */
export async function freshPods(ctx: Ctx, pool: PoolDef, n: number, label: string, warmup = WARMUP, checkEmpty = true, peer?: PeerRange) {
  const names = Array.from({ length: n + warmup }, (_, i) => `${label}-${i}`);
  const uids = await inBatches(names, 8, (name) => ctx.api.createPod(name, pool.name, "node1"));
  const peerNames = peer ? names.map((x) => `wb-${x}`) : [];
  const peerUids = await inBatches(peerNames, 8, (name) => ctx.api.createPod(name, pool.name, "node1"));
  const add: number[] = [];
  const del: number[] = [];
  const addCpu: number[] = [];
  const p = { add: [] as number[], del: [] as number[], addCpu: [] as number[] };
  let freedByOthers = 0;
  for (let i = 0; i < names.length; i++) {
    const runPeer = async () => {
      if (!peer) return;
      const r = await peerCycle(ctx, peer, { name: peerNames[i], uid: peerUids[i], node: "node1" });
      if (i >= warmup) {
        p.add.push(r.add);
        p.del.push(r.del);
        p.addCpu.push(r.addCpu);
      }
    };
    if (i % 2 === 1) await runPeer();
    const r = await podCycle(ctx, pool, { name: names[i], uid: uids[i], node: "node1" });
    if (i % 2 === 0) await runPeer();
    if (r.del === undefined) freedByOthers++;
    if (i >= warmup) {
      add.push(r.add);
      addCpu.push(r.addCpu);
      if (r.del !== undefined) del.push(r.del);
    }
  }
  const left = checkEmpty ? await ctx.api.poolClaims(pool.name) : [];
  if (left.length)
    fail(
      `after ${names.length} ADD+DEL of deleted pods, pool ${pool.name} still has ${left.length} claim(s): ${left
        .slice(0, 5)
        .map((c) => c.address)
        .join(", ")}`,
    );
  if (freedByOthers) {
    const msg = `${freedByOthers} of ${names.length} claims of pool ${pool.name} were already gone when their DEL came (freed by someone else); those DELs are left out`;
    failures.push(msg);
    console.error(`!! ${msg}`);
  }
  if (peer) {
    const held = await peerAllocations(ctx.api, [peer]);
    if (held) fail(`after ${names.length} ${PEER} ADD+DEL of deleted pods, its range ${peer.range} still holds ${held} address(es)`);
  }
  return { add, del, addCpu, freedByOthers, peer: peer ? p : undefined };
}

/** A cluster ADD repeated for an attachment that completed: answered from the node database, loads the cluster code, makes no API request. */
export async function heldBaseline(ctx: Ctx) {
  const uid = await ctx.api.createPod("held-0", SEQ.name, "node1");
  const pod = { name: "held-0", uid, node: "node1" };
  const id = newContainer();
  const first = await cni(ctx, "ADD", id, pod);
  const address = addressOf(`ADD of ${NS}/held-0`, first);
  const again: number[] = [];
  for (let i = -WARMUP; i < N; i++) {
    const r = await cni(ctx, "ADD", id, pod);
    if (addressOf(`repeated ADD of ${NS}/held-0`, r) !== address) fail(`repeated ADD of ${NS}/held-0 returned another address`, r);
    if (i >= 0) again.push(r.ms);
  }
  const verEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", CNI_COMMAND: "VERSION" };
  const version: number[] = [];
  for (let i = -WARMUP; i < N; i++) {
    const r = await timed(ctx.bin, [], verEnv, "{}");
    if (r.status !== 0) fail("berth CNI VERSION failed", r);
    if (i >= 0) version.push(r.ms);
  }
  await ctx.api.forceDeletePod(pod.name);
  const d = await cni(ctx, "DEL", id, pod);
  if (d.status !== 0) fail(`DEL of ${NS}/held-0`, d);
  return { again, version };
}
