/**
 * Phase 3 of the controller section: BOUND bound addresses (half plain pods,
 * half members of a StatefulSet stuck at ordinal 0), a claim and an endpoint
 * for each, created as admin; a fresh controller on them: its first full
 * scan, the wave of live re-judging when the claims' ADD deadline passes,
 * steady scans, CPU and RSS; then a failover to a fresh replica.
 */
import { BERTH_API_VERSION, BERTH_GROUP, CLAIM_KIND, CLAIMS_PATH as CLAIMS, ENDPOINT_KIND, POOL_LABEL } from "../../../plugin/kube/crd.ts";
import { NODES } from "../../../test/support/control-plane.ts";
import { logged } from "../../../test/support/log-lines.ts";
import { inBatches, r3, sleep } from "../lib.ts";
import type { Api } from "./api.ts";
import { ADD_DEADLINE, addr, BIG_STS, BOUND, claimName, endpoints, NS, PAR, POOL, say, statefulsets, until } from "./config.ts";
import { type Ctx, createPod } from "./plugin.ts";
import { type Controller, procStats, startController } from "./process.ts";

const half = Math.floor(BOUND / 2);

/** BOUND free addresses of pool bench-ctl from 10.202.1.0 on, none a .0 or .255. */
async function freeAddresses(api: Api): Promise<string[]> {
  const base = 256; // 10.202.1.0 on: clear of phases 1 and 2 (which take free addresses at random, but few)
  const taken = new Set((await api.poolClaims()).map((c) => c.spec.address));
  const addresses: string[] = [];
  for (let i = base; addresses.length < BOUND; i++) if (!taken.has(addr(i)) && (i & 255) !== 0 && (i & 255) !== 255) addresses.push(addr(i));
  return addresses;
}

/** Entry `i`'s claim and endpoint: a plain pod's (created here) or a StatefulSet member's (a made-up UID). */
async function createEntry(api: Api, i: number, address: string): Promise<void> {
  const plain = i < half;
  const name = plain ? `bound-${i}` : `${BIG_STS}-${i - half}`;
  const node = NODES[i % 3];
  const uid = plain ? await createPod(api, name, node) : `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`;
  await api.create(CLAIMS, {
    apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
    kind: CLAIM_KIND,
    metadata: { name: claimName(address), labels: { [POOL_LABEL]: POOL } },
    spec: {
      address,
      ipVersion: 4,
      pool: POOL,
      podNamespace: NS,
      podName: name,
      podUID: uid,
      containerID: `fill-${i}`,
      interface: "eth0",
      node,
      claimedAt: new Date().toISOString(),
      addDeadlineSeconds: ADD_DEADLINE,
      ...(plain ? {} : { statefulSet: BIG_STS }),
    },
  });
  await api.create(endpoints, {
    apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
    kind: ENDPOINT_KIND,
    metadata: { name, namespace: NS },
    spec: {
      podUID: uid,
      node,
      containerID: `fill-${i}`,
      ownerControllerType: plain ? "None" : "StatefulSet",
      ...(plain ? {} : { ownerControllerName: BIG_STS }),
      ips: [{ interface: "eth0", ipv4: `${address}/16`, ipv4Pool: POOL }],
    },
  });
}

/** The StatefulSet, then BOUND claims + endpoints, PAR at a time; returns how long it took, s. */
async function fill(api: Api): Promise<number> {
  const t0 = performance.now();
  await api.create(statefulsets, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: BIG_STS, namespace: NS },
    spec: {
      serviceName: BIG_STS,
      replicas: BOUND - half,
      selector: { matchLabels: { app: BIG_STS } },
      // OrderedReady: ordinal 0 never becomes Ready (no kubelet), so the StatefulSet controller creates no other pod.
      template: {
        metadata: { labels: { app: BIG_STS } },
        spec: { nodeName: "node1", automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
      },
    },
  });
  const entries = Array.from({ length: BOUND }, (_, i) => i);
  const addresses = await freeAddresses(api);
  await inBatches(entries, PAR, (i) => createEntry(api, i, addresses[i]));
  return (performance.now() - t0) / 1000;
}

/** Waits until the single-object GETs stop growing (no more than 20 more in `everyMs`); returns the last counts. */
async function settle(api: Api, from: Record<string, number>, everyMs: number): Promise<Record<string, number>> {
  let last = from;
  for (;;) {
    await sleep(everyMs);
    const now = await api.getCounts();
    const grew = ["berthendpoints", "pods", "statefulsets"].some((r) => (now[r] ?? 0) > (last[r] ?? 0) + 20);
    last = now;
    if (!grew) return last;
  }
}

/** The first replica on the fresh claims: first scan, the ADD-deadline wave, three steady scans. */
async function firstReplica(ctx: Ctx, claimedAt: number) {
  const { api } = ctx;
  // A fresh controller on them. --resync-seconds 15: full scans keep coming while we watch.
  const getsBefore = await api.getCounts();
  const started = performance.now();
  const ctl = await startController(ctx, "bench-ctl-big", 15);
  await until("the first full scan", async () => (await ctl.scans()) >= 1, 120_000, 50);
  const firstScanWall = (performance.now() - started) / 1000;
  const firstScan = (await ctl.metrics()).get("berth_reconcile_last_duration_seconds")!;
  const atFirstScan = procStats(ctl.pid);
  // The claims' ADD deadline (ADD_DEADLINE s after their creation, by the API server's clock) passes: the
  // controller re-judges every claim on the live API server.
  const timeoutAt = claimedAt + ADD_DEADLINE * 1000 + 2000;
  await sleep(Math.max(0, timeoutAt - Date.now()) + 1000);
  // Wait for that wave to settle: no GET growth for 3 s.
  const last = await settle(api, await api.getCounts(), 3000);
  const afterWave = procStats(ctl.pid);
  const gets = Object.fromEntries(
    ["berthendpoints", "pods", "statefulsets", "berthipclaims", "spiderippools"].map((r) => [r, (last[r] ?? 0) - (getsBefore[r] ?? 0)]),
  );
  // Steady state: three more full scans.
  const scanDurations: number[] = [];
  const cpuPerScan: number[] = [];
  let prev = procStats(ctl.pid);
  let scans = await ctl.scans();
  for (let i = 0; i < 3; i++) {
    await until("another full scan", async () => (await ctl.scans()) > scans, 60_000, 50);
    scans = await ctl.scans();
    scanDurations.push((await ctl.metrics()).get("berth_reconcile_last_duration_seconds")!);
    const now = procStats(ctl.pid);
    cpuPerScan.push(r3(now.cpuSeconds - prev.cpuSeconds));
    prev = now;
  }
  const steady = procStats(ctl.pid);
  const m = await ctl.metrics();
  return { ctl, firstScanWall, firstScan, atFirstScan, afterWave, gets, scanDurations, cpuPerScan, steady, m };
}

/** A failover: a fresh replica on claims older than the ADD timeout (their watch replay re-judges every one live at once). */
async function failover(ctx: Ctx, first: Controller) {
  const { api } = ctx;
  await first.stop();
  const g0 = await api.getCounts();
  const t1 = performance.now();
  const next = await startController(ctx, "bench-ctl-big-2", 15);
  await until("the new replica's first full scan", async () => (await next.scans()) >= 1, 120_000, 50);
  const failoverFirstScan = (performance.now() - t1) / 1000;
  const prevGets = await settle(api, await api.getCounts(), 2000);
  const settled = (performance.now() - t1) / 1000 - 2;
  const fo = procStats(next.pid);
  const result = {
    firstScanAfterStartSeconds: r3(failoverFirstScan),
    scanSeconds: r3((await next.metrics()).get("berth_reconcile_last_duration_seconds")!),
    liveWaveSettledAfterSeconds: r3(settled),
    cpuSeconds: r3(fo.cpuSeconds),
    peakRssMiB: fo.hwmMiB,
    gets: Object.fromEntries(["berthendpoints", "pods", "statefulsets"].map((r) => [r, (prevGets[r] ?? 0) - (g0[r] ?? 0)])),
  };
  return { next, result };
}

/** Phase 3: BOUND claims + endpoints (half plain pods, half members of a StatefulSet stuck at ordinal 0), then a fresh controller. */
export async function bound(ctx: Ctx) {
  const fillSeconds = await fill(ctx.api);
  const claimedAt = Date.now();
  say(`${BOUND} claims + endpoints (${half} plain pods, ${BOUND - half} StatefulSet members) created in ${fillSeconds.toFixed(1)} s`);
  const f = await firstReplica(ctx, claimedAt);
  let released = logged(f.ctl.log(), "address released").length;
  const { next, result: fo } = await failover(ctx, f.ctl);
  released += logged(next.log(), "address released").length;
  return {
    ctl: next,
    result: {
      failover: fo,
      bound: BOUND,
      fillSeconds: r3(fillSeconds),
      firstScan: {
        wallFromStartSeconds: r3(f.firstScanWall),
        scanSeconds: r3(f.firstScan),
        cpuSeconds: r3(f.atFirstScan.cpuSeconds),
        rssMiB: f.atFirstScan.rssMiB,
      },
      addTimeoutWave: { cpuSeconds: r3(f.afterWave.cpuSeconds - f.atFirstScan.cpuSeconds), gets: f.gets, rssMiB: f.afterWave.rssMiB },
      steady: {
        scanSeconds: f.scanDurations.map(r3),
        cpuSecondsPerResync15s: f.cpuPerScan,
        rssMiB: f.steady.rssMiB,
        peakRssMiB: f.steady.hwmMiB,
        totalCpuSeconds: r3(f.steady.cpuSeconds),
      },
      claimsMetric: f.m.get("berth_claims"),
      released,
    },
  };
}
