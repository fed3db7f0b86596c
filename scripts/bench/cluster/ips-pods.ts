/**
 * Phase 5 of the cluster section, "IPs = pods" (ips-pods-runner.ts): `n`
 * pods on the simulated nodes, a pool of exactly `n` addresses, every ADD at
 * once (at most IPS_PER_NODE in flight per node), failed ADDs retried as a
 * kubelet would; berth, then the peer (or the other way round), each
 * cleaning up after itself.
 */
import { path } from "../../../test/support/kube/api-paths.ts";
import { inBatches } from "../lib.ts";
import { BENCH_LABEL, IPS_BACKOFF_MS, IPS_KILL_MS, IPS_NODE_NAMES, IPS_PER_NODE, PEER, type PoolDef } from "./config.ts";
import { type IpsOptions, type IpsPlugin, type IpsResult, ipsPods } from "./ips-pods-runner.ts";
import { type PeerRange, peerAllocations } from "./peer.ts";
import { type Ctx, cni, failures, inPool, newContainer, peerCall, peerHas } from "./plugin.ts";

type Who = "berth" | "peer";

/** What one run needs: its size, berth's pool, the peer's range, how long it may try. */
interface IpsShape {
  n: number;
  pool: PoolDef;
  peerRange: PeerRange;
  deadlineS: number;
}

function pluginOf(ctx: Ctx, who: Who, shape: IpsShape): IpsPlugin {
  const { pool, peerRange } = shape;
  return who === "berth"
    ? { name: "berth", add: (id, pod, k) => cni(ctx, "ADD", id, pod, k), del: (id, pod, k) => cni(ctx, "DEL", id, pod, k), inPool: (a) => inPool(pool, a) }
    : {
        name: PEER,
        add: (id, pod, k) => peerCall(ctx, peerRange, "ADD", id, pod, k),
        del: (id, pod, k) => peerCall(ctx, peerRange, "DEL", id, pod, k),
        inPool: (a) => peerHas(peerRange, a),
      };
}

/** One plugin's run: its pods created, served, then removed and their sandboxes DELed (not timed); problems go to `failures`. */
async function runOne(ctx: Ctx, who: Who, shape: IpsShape, opts: IpsOptions, say: (s: string) => void): Promise<IpsResult> {
  const { api } = ctx;
  const { n, pool, peerRange, deadlineS } = shape;
  const prefix = `${who === "berth" ? "ips" : "wb-ips"}-${n}`;
  const names = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  const uids = await inBatches(names, 8, (name, i) => api.createPod(name, pool.name, IPS_NODE_NAMES[i % IPS_NODE_NAMES.length]));
  const pods = names.map((name, i) => ({ name, uid: uids[i], node: IPS_NODE_NAMES[i % IPS_NODE_NAMES.length] }));
  const plugin = pluginOf(ctx, who, shape);
  say(`${plugin.name}: ${n} pods on ${IPS_NODE_NAMES.length} nodes, ${n} addresses, all ADDs at once (at most ${IPS_PER_NODE} per node) ...`);
  const r = await ipsPods(plugin, pods, newContainer, opts, say);
  say(
    `${plugin.name}: ${r.served} of ${n} served in ${(r.wallMs / 1000).toFixed(1)} s; ${r.failedAttempts} failed attempt(s) ${JSON.stringify(r.failedByCode)}, ${r.failedByDeadline} by deadline`,
  );
  // Clean up (not timed): pods gone, then the served sandboxes' DELs (the release).
  await inBatches(pods, 16, (p) => api.forceDeletePod(p.name));
  let delFailed = 0;
  await inBatches(r.sandboxes, 10, async (x) => {
    const d = await plugin.del(x.containerId, x.pod, IPS_KILL_MS);
    if (d.status !== 0) delFailed++;
  });
  if (delFailed) failures.push(`IPs = pods (${n}), ${plugin.name}: ${delFailed} DEL(s) of served pods failed at cleanup`);
  const left = who === "berth" ? (await api.poolClaims(pool.name)).length : await peerAllocations(api, [peerRange]);
  if (left) failures.push(`IPs = pods (${n}), ${plugin.name}: ${left} address(es) still held after every pod's DEL`);
  if (!r.allServed) failures.push(`IPs = pods (${n}), ${plugin.name}: only ${r.served} of ${n} pods served within ${deadlineS} s`);
  if (r.addressProblems.length) failures.push(`IPs = pods (${n}), ${plugin.name}: ${r.addressProblems.slice(0, 5).join("; ")}`);
  return r;
}

/** One "IPs = pods" size's results: berth's, the peer's (if any), and which went first. */
export interface IpsRun {
  n: number;
  berth: IpsResult;
  peer?: IpsResult;
  order: string;
}

/**
 * Phase 5, "IPs = pods": `n` pods on the simulated nodes, a pool of exactly `n` addresses, every ADD at once.
 * berth and the peer (if any) one after the other, `peerFirst` deciding which goes first; each cleans up after itself.
 */
export async function ipsPodsPhase(
  ctx: Ctx,
  n: number,
  pool: PoolDef,
  peerRange: PeerRange,
  deadlineS: number,
  peerFirst: boolean,
  say: (s: string) => void,
): Promise<IpsRun> {
  const { api } = ctx;
  for (const name of IPS_NODE_NAMES)
    await api.must("POST", path("nodes"), { apiVersion: "v1", kind: "Node", metadata: { name, labels: { [BENCH_LABEL]: "true" } } }, [409]);
  const opts = {
    perNode: IPS_PER_NODE,
    backoffMs: IPS_BACKOFF_MS,
    deadlineMs: deadlineS * 1000,
    killAfterMs: IPS_KILL_MS,
    metrics: () => api.must<string>("GET", "/metrics"),
  };
  const order: Who[] = ctx.peer ? (peerFirst ? ["peer", "berth"] : ["berth", "peer"]) : ["berth"];
  const out: { berth?: IpsResult; peer?: IpsResult } = {};
  for (const who of order) out[who] = await runOne(ctx, who, { n, pool, peerRange, deadlineS }, opts, say);
  return { n, berth: out.berth!, peer: out.peer, order: order.map((w) => (w === "peer" ? PEER : w)).join(" then ") };
}
