/**
 * Phase 4 of the controller section: a big cluster (BENCH_CTL_SCALE pods,
 * Pending, each with a claim and an endpoint, in namespace berth-bench-scale
 * and pool bench-ctl-scale); a fresh controller (--list-page-size
 * BENCH_CTL_PAGE) scans them: the first full scan's time, steady scans, LIST
 * requests per scan, and its peak RSS against the Deployment's memory limit,
 * in a memory cgroup of that limit. Nothing may be released.
 */
import {
  BERTH_API_VERSION,
  BERTH_GROUP,
  CLAIM_KIND,
  CLAIMS_PATH as CLAIMS,
  ENDPOINT_KIND,
  ENDPOINT_PLURAL,
  POOL_GROUP,
  POOL_KIND,
  POOL_LABEL,
  POOL_VERSION,
  POOLS_PATH as POOLS,
} from "../../../plugin/kube/crd.ts";
import { NODES } from "../../../test/support/control-plane.ts";
import { path } from "../../../test/support/kube/api-paths.ts";
import { inBatches, r3 } from "../lib.ts";
import type { Api } from "./api.ts";
import { claimName, MEMORY_LIMIT_MIB, PAGE, PAR, SCALE, SCALE_NS, SCALE_POOL, SCALE_SUBNET, say, scaleAddr, until } from "./config.ts";
import type { Ctx } from "./plugin.ts";
import { memoryCgroup, procStats, sampleRss, startController } from "./process.ts";

/** Phase 4's objects: SCALE Pending pods, each with a claim and an endpoint. */
async function fillScale(api: Api): Promise<void> {
  await api.create(path("namespaces"), { apiVersion: "v1", kind: "Namespace", metadata: { name: SCALE_NS } });
  await api.create(POOLS, { apiVersion: `${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, metadata: { name: SCALE_POOL }, spec: { subnet: SCALE_SUBNET } });
  const scalePods = path("pods", { ns: SCALE_NS });
  const scaleEndpoints = path(ENDPOINT_PLURAL, { ns: SCALE_NS });
  const t0 = performance.now();
  let done = 0;
  await inBatches(
    Array.from({ length: SCALE }, (_, i) => i),
    PAR,
    async (i) => {
      const name = `scale-${i}`;
      const node = NODES[i % 3];
      // No nodeName: no scheduler runs, so it stays Pending (and a deletion removes it at once).
      const pod = await api.create(scalePods, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: SCALE_NS, annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [SCALE_POOL] }) } },
        spec: { automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
      });
      const uid = pod.metadata.uid;
      const address = scaleAddr(i + 1);
      await api.create(CLAIMS, {
        apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
        kind: CLAIM_KIND,
        metadata: { name: claimName(address), labels: { [POOL_LABEL]: SCALE_POOL } },
        spec: {
          address,
          ipVersion: 4,
          pool: SCALE_POOL,
          podNamespace: SCALE_NS,
          podName: name,
          podUID: uid,
          containerID: `scale-${i}`,
          interface: "eth0",
          node,
          claimedAt: new Date().toISOString(),
          addDeadlineSeconds: 45,
        },
      });
      await api.create(scaleEndpoints, {
        apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`,
        kind: ENDPOINT_KIND,
        metadata: { name, namespace: SCALE_NS },
        spec: {
          podUID: uid,
          node,
          containerID: `scale-${i}`,
          ownerControllerType: "None",
          ips: [{ interface: "eth0", ipv4: `${address}/16`, ipv4Pool: SCALE_POOL }],
        },
      });
      if (++done % 10_000 === 0) say(`  ${done} of ${SCALE} pods + claims + endpoints (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    },
  );
}

/**
 * Phase 4's (and 5's) objects, made unless they are there already: kept from an earlier run
 * (BENCH_CTL_KEEP_SCALE=1), or made by phase 4 for phase 5 in the same run. Returns the seconds it took.
 */
export async function scaleObjects(api: Api): Promise<number> {
  const t0 = performance.now();
  if ((await api.poolClaims(SCALE_POOL)).length === SCALE) {
    say(`${SCALE} pods + claims + endpoints already there (kept, or made by phase 4): no fill`);
  } else await fillScale(api);
  const fillSeconds = (performance.now() - t0) / 1000;
  say(`${SCALE} pods (Pending) + ${SCALE} claims + ${SCALE} endpoints ready in ${fillSeconds.toFixed(1)} s`);
  return fillSeconds;
}

/**
 * Phase 4: SCALE pods (Pending), each with a claim and an endpoint, then a fresh controller scanning them in
 * pages: scan times, LIST requests, peak RSS against the Deployment's limit. Nothing may be released.
 */
export async function bigCluster(ctx: Ctx) {
  const { api } = ctx;
  const fillSeconds = await scaleObjects(api);

  const started = performance.now();
  // As the Deployment's limit would: the controller starts in a cgroup limited to it (the engine sizes its
  // heap by the limit it sees at start), and must live under it, not only measure under it.
  const cgroup = process.env.BENCH_CTL_MEMCG === "0" ? undefined : memoryCgroup(MEMORY_LIMIT_MIB);
  const ctl = await startController(ctx, "bench-ctl-scale", 30, ["--list-page-size", String(PAGE), "--log-level", "debug"], cgroup?.dir);
  const rss = sampleRss(ctl.pid);
  await until("the first full scan", async () => (await ctl.scans()) >= 1, 600_000, 200);
  const firstScanWall = (performance.now() - started) / 1000;
  const m1 = await ctl.metrics();
  const firstScan = m1.get("berth_reconcile_last_duration_seconds")!;
  const requests = (m: Map<string, number>) =>
    Object.fromEntries(["claims", "pods", "endpoints", "statefulsets", "nodes"].map((k) => [k, m.get(`berth_list_requests_total{kind="${k}"}`) ?? 0]));
  const firstRequests = requests(m1);
  const atFirst = procStats(ctl.pid);
  const scanDurations: number[] = [];
  let scans = await ctl.scans();
  for (let i = 0; i < 2; i++) {
    await until("another full scan", async () => (await ctl.scans()) > scans, 600_000, 200);
    scans = await ctl.scans();
    scanDurations.push(r3((await ctl.metrics()).get("berth_reconcile_last_duration_seconds")!));
  }
  const m = await ctl.metrics();
  const failures = ["claims", "pods", "endpoints", "statefulsets", "nodes", "pools"].filter((k) => (m.get(`berth_list_failures_total{kind="${k}"}`) ?? 0) > 0);
  const end = procStats(ctl.pid);
  const peak = rss.stop(ctl.log());
  const limited = cgroup?.stats();
  const released = [...ctl.log().matchAll(/address released/g)].length;
  await ctl.stop();
  cgroup?.remove();
  return {
    pods: SCALE,
    claims: SCALE,
    endpoints: SCALE,
    fillSeconds: r3(fillSeconds),
    firstScan: { wallFromStartSeconds: r3(firstScanWall), scanSeconds: r3(firstScan), listRequests: firstRequests, rssMiB: atFirst.rssMiB },
    steadyScanSeconds: scanDurations,
    claimsMetric: m.get("berth_claims"),
    listFailures: failures,
    cpuSeconds: r3(end.cpuSeconds),
    rssMiB: end.rssMiB,
    peakRssMiB: end.hwmMiB,
    peakDuring: peak,
    /** In a memory cgroup limited to MEMORY_LIMIT_MIB: its peak usage and OOM kills (undefined: not run in one). */
    cgroup: limited,
    memoryLimitMiB: MEMORY_LIMIT_MIB,
    underLimit: end.hwmMiB < MEMORY_LIMIT_MIB,
    released,
  };
}
