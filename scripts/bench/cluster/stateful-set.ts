/**
 * Phase 2 of the cluster section: a real StatefulSet (replicas 1, pool
 * bench-sts) whose pod is force-deleted and recreated by the StatefulSet
 * controller, again and again; every ADD must give its address back, and
 * every DEL (after the deletion, as a kubelet's) must keep it bound.
 */
import { logged } from "../../../test/support/log-lines.ts";
import { fail, sleep } from "../lib.ts";
import type { Admin } from "./admin.ts";
import { N, NS, POOL_ANNOTATION, STS, STS_NAME, WARMUP } from "./config.ts";
import { addressOf, type Ctx, cni, inPool, newContainer } from "./plugin.ts";

const pod0 = `${STS_NAME}-0`;

async function createStatefulSet(api: Admin): Promise<void> {
  await api.apply(
    JSON.stringify({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: STS_NAME, namespace: NS },
      spec: {
        replicas: 1,
        serviceName: STS_NAME,
        selector: { matchLabels: { app: STS_NAME } },
        template: {
          metadata: { labels: { app: STS_NAME }, annotations: { [POOL_ANNOTATION]: JSON.stringify({ ipv4: [STS.name] }) } },
          // Bound to node1 from the start: nothing schedules here.
          spec: { nodeName: "node1", automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
        },
      },
    }),
  );
}

/** Waits (not timed) for the controller's pod with a UID other than `lastUid`; returns that UID. */
async function nextPod(api: Admin, lastUid: string): Promise<string> {
  for (const deadline = Date.now() + 60_000; ; await sleep(10)) {
    const p = await api.getPod(pod0);
    if (p && !p.deleting && p.uid !== lastUid) return p.uid;
    if (Date.now() > deadline) fail(`StatefulSet ${NS}/${STS_NAME} did not recreate ${pod0} within 60 s`);
  }
}

/** Phase 2: a real StatefulSet's pod, force-deleted and recreated by the controller; ADD must give its address back. */
export async function statefulSet(ctx: Ctx) {
  const { api } = ctx;
  await createStatefulSet(api);
  const add: number[] = [];
  const del: number[] = [];
  const recreate: number[] = [];
  const reasons = new Map<string, number>();
  let address: string | undefined;
  let lastUid = "";
  for (let i = -1 - WARMUP; i < N; i++) {
    const t = performance.now();
    const uid = await nextPod(api, lastUid);
    if (lastUid) recreate.push(performance.now() - t);
    lastUid = uid;
    const pod = { name: pod0, uid, node: "node1" };
    const id = newContainer();
    const a = await cni(ctx, "ADD", id, pod);
    const got = addressOf(`ADD of StatefulSet pod ${NS}/${pod0} (UID ${uid})`, a);
    if (!inPool(STS, got)) fail(`ADD of ${NS}/${pod0} returned ${got}, outside pool ${STS.name}`);
    address ??= got; // the first ADD (warm-up) binds the address
    if (got !== address) fail(`StatefulSet pod ${NS}/${pod0} came back on ${got}, not on its address ${address} (iteration ${i + 1 + WARMUP}, UID ${uid})`, a);
    // The kubelet tears the sandbox down after the pod is deleted: DEL sees the pod gone (or back with a new UID).
    await api.forceDeletePod(pod0);
    const d = await cni(ctx, "DEL", id, pod);
    if (d.status !== 0) fail(`DEL of StatefulSet pod ${NS}/${pod0}`, d);
    // berth logs one JSON object a line (test/support/log-lines.ts).
    const kept = logged(d.stderr, "addresses stay bound")[0];
    if (!kept) fail(`DEL of StatefulSet pod ${NS}/${pod0} did not keep ${address} bound`, d);
    const reason = String(kept.reason).replace(/ordinal \d+/, "ordinal N");
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    if (i >= 0) {
      add.push(a.ms);
      del.push(d.ms);
    }
  }
  const claims = await api.poolClaims(STS.name);
  if (claims.length !== 1 || claims[0].address !== address)
    fail(`pool ${STS.name} should hold exactly the StatefulSet's claim on ${address}; it holds ${claims.map((c) => c.address).join(", ") || "none"}`);
  return { add, del, recreate, address: address!, reasons: Object.fromEntries(reasons) };
}
