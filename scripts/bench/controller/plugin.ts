/**
 * The controller section's plugin calls (dist/berth ADDs, as ServiceAccount
 * kube-system/berth), the pods they are for, and the removal of everything
 * the section makes.
 */
import { CLAIMS_PATH as CLAIMS, POOLS_PATH as POOLS } from "../../../plugin/kube/crd.ts";
import type { ControlPlane } from "../../../test/support/control-plane.ts";
import { path } from "../../../test/support/kube/api-paths.ts";
import { spawnCni } from "../../../test/support/spawn-cni.ts";
import { inBatches } from "../lib.ts";
import type { Api } from "./api.ts";
import { ANNOTATIONS, BIG_STS, NS, PAR, POOL, pods, SCALE_NS, SCALE_POOL, STS, statefulsets, until } from "./config.ts";

export interface Ctx {
  api: Api;
  plane: ControlPlane;
  bin: string;
  dirs: Record<string, string>;
}

let seq = 0;
const container = () => `bench-ctl-${process.pid}-${++seq}`;

function cni(ctx: Ctx, command: "ADD" | "DEL", id: string, pod: { name: string; uid: string; node: string }) {
  return spawnCni(ctx.bin, {
    command,
    containerId: id,
    netns: "/var/run/netns/none",
    ifname: "eth0",
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
    stdin: {
      cniVersion: "1.0.0",
      name: "bench-ctl",
      type: "berth",
      ipam: { type: "berth", kubeconfig: ctx.plane.pluginKubeconfig, nodeName: pod.node, dataDir: ctx.dirs[pod.node] },
    },
  });
}

/** berth's ADD for `pod`: its address, or throws. */
export async function add(ctx: Ctx, pod: { name: string; uid: string; node: string }): Promise<string> {
  const r = await cni(ctx, "ADD", container(), pod);
  if (r.status !== 0) throw new Error(`ADD of ${NS}/${pod.name} failed: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout).ips[0].address.split("/")[0];
}

/** A plain pod of pool bench-ctl bound to `node`; returns its UID. */
export async function createPod(api: Api, name: string, node: string): Promise<string> {
  const body = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, annotations: ANNOTATIONS },
    spec: { nodeName: node, automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
  };
  return (await api.create(pods, body)).metadata.uid;
}

export const forceDelete = (api: Api, name: string) => api.delete(`${pods}/${name}`, { gracePeriodSeconds: 0 });

/** Removes what phases 1-3 make (idempotent): the StatefulSets, pods, claims of pool bench-ctl, the pool, the namespace. */
export async function removeAll(api: Api): Promise<void> {
  const ns = await api.get(path("namespaces", { name: NS }));
  if (ns) {
    for (const s of [STS, BIG_STS]) await api.delete(`${statefulsets}/${s}`, { propagationPolicy: "Orphan" });
    await inBatches(await api.list(pods), PAR, (p) => forceDelete(api, p.metadata.name));
  }
  await inBatches(await api.poolClaims(), PAR, (c) => api.delete(`${CLAIMS}/${c.metadata.name}`));
  await api.delete(`${POOLS}/${POOL}`);
  if (ns) {
    await api.must("DELETE", path("namespaces", { name: NS }), undefined, [404, 409]);
    await until(`namespace ${NS} to go`, async () => !(await api.get(path("namespaces", { name: NS }))), 180_000, 250);
  }
}

/** Removes phase 4's namespace (its pods are unscheduled: deleted at once), claims and pool. */
export async function removeScale(api: Api): Promise<void> {
  const claims = await api.poolClaims(SCALE_POOL);
  await inBatches(claims, PAR, (c) => api.delete(`${CLAIMS}/${c.metadata.name}`));
  await api.delete(`${POOLS}/${SCALE_POOL}`);
  if (await api.get(path("namespaces", { name: SCALE_NS }))) {
    await api.must("DELETE", path("namespaces", { name: SCALE_NS }), undefined, [404, 409]);
    await until(`namespace ${SCALE_NS} to go`, async () => !(await api.get(path("namespaces", { name: SCALE_NS }))), 600_000, 500);
  }
}
