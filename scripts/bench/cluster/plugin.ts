/**
 * The cluster section's CNI calls: dist/berth (as ServiceAccount
 * kube-system/berth) and the peer, each a whole process for a pod of
 * namespace berth-bench on a node with its own dataDir; reading their
 * results; and the problems that do not stop the section.
 */
import { spawnCni } from "../../../test/support/spawn-cni.ts";
import { inRangesText, poolRanges } from "../addresses.ts";
import { fail, type Timed } from "../lib.ts";
import type { Admin } from "./admin.ts";
import { NETWORK, NS, type PoolDef } from "./config.ts";
import { type Peer, type PeerRange, peerCni } from "./peer.ts";

export interface Ctx {
  api: Admin;
  bin: string;
  /** Each node's dataDir, made on first use. */
  dirs: Map<string, string>;
  fresh: (label: string) => string;
  pluginKubeconfig: string;
  /** Whereabouts, when BENCH_PEER_WHEREABOUTS is set: run beside berth on the same shapes. */
  peer?: Peer;
}

export interface PodRef {
  name: string;
  uid: string;
  node: string;
}

/** Problems that do not stop the section (failed concurrent rounds, claims freed by others): listed at the end, exit 1. */
export const failures: string[] = [];

function confFor(ctx: Ctx, node: string): string {
  let dataDir = ctx.dirs.get(node);
  if (!dataDir) ctx.dirs.set(node, (dataDir = ctx.fresh(node)));
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: NETWORK,
    type: "bridge",
    ipam: { type: "berth", kubeconfig: ctx.pluginKubeconfig, nodeName: node, dataDir },
  });
}

let idSeq = 0;
export const runTag = Math.random().toString(36).slice(2, 8);
/** A container ID of this run. */
export const newContainer = () => `bench-c-${runTag}-${++idSeq}`;

/** berth's call for `pod` on its node. */
export function cni(ctx: Ctx, command: "ADD" | "DEL", containerId: string, pod: PodRef, killAfterMs?: number): Promise<Timed> {
  return spawnCni(
    ctx.bin,
    {
      command,
      containerId,
      netns: `/var/run/netns/${containerId}`,
      ifname: "eth0",
      args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
      stdin: confFor(ctx, pod.node),
    },
    killAfterMs,
  );
}
/** The peer's call for `pod` on range `r`. */
export const peerCall = (ctx: Ctx, r: PeerRange, command: "ADD" | "DEL", containerId: string, pod: PodRef, killAfterMs?: number) =>
  peerCni(ctx.peer!, r, command, containerId, { ns: NS, name: pod.name, uid: pod.uid }, killAfterMs);

/** The IPv4 address (without prefix) of a successful ADD, or undefined with the reason. */
export function parseAddress(r: Timed): { address?: string; why?: string } {
  if (r.status !== 0) return { why: `exit ${r.status}: ${r.stdout.trim()} ${r.stderr.trim()}` };
  try {
    const a = (JSON.parse(r.stdout) as { ips?: { address?: string }[] }).ips?.[0]?.address;
    return typeof a === "string" ? { address: a.split("/")[0] } : { why: `no ips[0].address in ${r.stdout.trim()}` };
  } catch {
    return { why: `stdout is not JSON: ${r.stdout.trim()}` };
  }
}
/** The address of a successful ADD, or fails the section. */
export function addressOf(what: string, r: Timed): string {
  const p = parseAddress(r);
  if (!p.address) fail(`${what} failed`, r);
  return p.address;
}
/** The warning and error lines a call logged. */
export const warnings = (r: Timed) => r.stderr.split("\n").filter((l) => /"level":"(warn|error)"/.test(l));

/** Is `a` one of the addresses pool `p` may give? */
export const inPool = (p: PoolDef, a: string) => inRangesText(a, poolRanges(p));
/** Is `a` one of the addresses the peer may give from range `r`? */
export const peerHas = (r: PeerRange, a: string) =>
  inRangesText(a, poolRanges({ subnet: r.range, ips: r.start && r.end ? [`${r.start}-${r.end}`] : undefined }));
