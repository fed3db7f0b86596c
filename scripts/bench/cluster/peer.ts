/**
 * The peer of the cluster bench: Whereabouts (v0.6.2 in ../shared/peers/,
 * not part of the project), run side by side with berth on the same control
 * plane and the same pod shapes when `BENCH_PEER_WHEREABOUTS=<binary>` is
 * set. Nothing else needs it: without the variable the bench runs as before.
 *
 * How it is driven (the peer's README): its CRDs (ippools,
 * overlappingrangeipreservations; from `crds/` beside the binary, or
 * BENCH_PEER_WHEREABOUTS_CRDS) are created first; each call is a whole
 * process with the usual CNI_* variables, CNI_ARGS naming an existing pod, and
 * an ipam block `{type: whereabouts, range, range_start, range_end,
 * configuration_path}` whose file points it at the admin kubeconfig. Each
 * range is its own IPPool; DEL frees by container ID. Every ADD takes a
 * cluster-wide Lease first, so concurrent ADDs queue behind each other.
 */
import { accessSync, constants, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { AdminClient } from "../../../test/support/kube/admin-client.ts";
import { spawnCni } from "../../../test/support/spawn-cni.ts";
import { BenchFailure, sleep, type Timed } from "../lib.ts";

const GROUP_PATH = "/apis/whereabouts.cni.cncf.io/v1alpha1";
const CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/** One Whereabouts range: a pool of its own (an IPPool named after the range). */
export interface PeerRange {
  range: string;
  start?: string;
  end?: string;
}

export interface Peer {
  bin: string;
  /** The configuration_path file (datastore kubernetes, the admin kubeconfig). */
  confFile: string;
}

/** The peer binary from BENCH_PEER_WHEREABOUTS (resolved against the working directory), undefined when unset; throws when unusable. */
export function peerBinary(): string | undefined {
  const v = process.env.BENCH_PEER_WHEREABOUTS;
  if (!v) return undefined;
  const bin = resolve(v);
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new BenchFailure(`BENCH_PEER_WHEREABOUTS=${v}: ${bin} is not an executable file`);
  }
  return bin;
}

/** Creates the peer's CRDs (if missing) and waits until they are served; writes its configuration file into `dir`. */
export async function setUpPeer(api: AdminClient, bin: string, adminKubeconfig: string, dir: string): Promise<Peer> {
  const crdDir = process.env.BENCH_PEER_WHEREABOUTS_CRDS || join(dirname(bin), "crds");
  if (!existsSync(crdDir)) throw new BenchFailure(`the peer's CRDs are not in ${crdDir} (set BENCH_PEER_WHEREABOUTS_CRDS)`);
  for (const f of readdirSync(crdDir).filter((n) => /\.ya?ml$/.test(n))) {
    await api.must("POST", CRD_PATH, readFileSync(join(crdDir, f), "utf8"), [409], "application/yaml");
  }
  for (const deadline = Date.now() + 30_000; ; await sleep(250)) {
    const served = await Promise.all(["ippools", "overlappingrangeipreservations"].map((r) => api.request("GET", `${GROUP_PATH}/${r}?limit=1`)));
    if (served.every((r) => r.status === 200)) break;
    if (Date.now() > deadline) throw new BenchFailure(`the peer's CRDs from ${crdDir} are not served 30 s after their creation`);
  }
  const confFile = join(dir, "whereabouts.conf");
  writeFileSync(confFile, JSON.stringify({ datastore: "kubernetes", kubernetes: { kubeconfig: adminKubeconfig }, log_level: "error" }));
  return { bin, confFile };
}

function netconf(peer: Peer, r: PeerRange): string {
  const ipam: Record<string, string> = { type: "whereabouts", range: r.range, configuration_path: peer.confFile };
  if (r.start) ipam.range_start = r.start;
  if (r.end) ipam.range_end = r.end;
  return JSON.stringify({ cniVersion: "0.3.1", name: "bench-peer", type: "bridge", ipam });
}

/** One Whereabouts call for pod `ns/name` (which must exist for an ADD). */
export function peerCni(
  peer: Peer,
  r: PeerRange,
  command: "ADD" | "DEL",
  containerId: string,
  pod: { ns: string; name: string; uid?: string },
  killAfterMs?: number,
): Promise<Timed> {
  return spawnCni(
    peer.bin,
    {
      command,
      containerId,
      netns: `/var/run/netns/${containerId}`,
      ifname: "eth0",
      args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.ns};K8S_POD_NAME=${pod.name}${pod.uid ? `;K8S_POD_UID=${pod.uid}` : ""}`,
      stdin: netconf(peer, r),
    },
    killAfterMs,
  );
}

interface IPPool {
  metadata: { name: string; namespace: string };
  spec: { range: string; allocations?: Record<string, { id: string; podref?: string }> };
}

/** Addresses the peer still holds in these ranges (their IPPools' allocations). */
export async function peerAllocations(api: AdminClient, ranges: PeerRange[]): Promise<number> {
  const want = new Set(ranges.map((r) => r.range));
  const pools = await api.list<IPPool>(`${GROUP_PATH}/ippools`);
  return pools.filter((p) => want.has(p.spec.range)).reduce((n, p) => n + Object.keys(p.spec.allocations ?? {}).length, 0);
}

/** Deletes the peer's IPPools of these ranges and its reservations for pods of namespace `ns` (idempotent; no-op without the CRDs). */
export async function removePeerObjects(api: AdminClient, ranges: PeerRange[], ns: string): Promise<number> {
  const want = new Set(ranges.map((r) => r.range));
  let n = 0;
  const pools = await api.request<{ items?: IPPool[] }>("GET", `${GROUP_PATH}/ippools`);
  if (pools.status !== 200) return 0; // the CRDs are not there: nothing of the peer's exists
  for (const p of pools.body?.items ?? []) {
    if (!want.has(p.spec.range)) continue;
    await api.delete(`${GROUP_PATH}/namespaces/${p.metadata.namespace}/ippools/${p.metadata.name}`);
    n++;
  }
  const res = await api.request<{ items?: { metadata: { name: string; namespace: string }; spec?: { podref?: string } }[] }>(
    "GET",
    `${GROUP_PATH}/overlappingrangeipreservations`,
  );
  for (const o of res.body?.items ?? []) {
    if (!o.spec?.podref?.startsWith(`${ns}/`)) continue;
    await api.delete(`${GROUP_PATH}/namespaces/${o.metadata.namespace}/overlappingrangeipreservations/${o.metadata.name}`);
    n++;
  }
  return n;
}
