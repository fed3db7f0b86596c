/**
 * "IPs = pods", the shape of Spiderpool's published IPAM benchmark: as many
 * pods as the pool has addresses, spread over simulated nodes, every ADD
 * started at once (at most `perNode` CNI calls in flight per node, as a
 * kubelet and its runtime would have), and every failed ADD retried the way
 * a kubelet does: the runtime DELs the failed sandbox, and after a back-off
 * the kubelet makes a new sandbox (a new container ID) and ADDs again.
 *
 * Plugin-neutral: the caller (phase 5, ips-pods.ts) creates the pods,
 * says how to ADD and DEL for berth or the peer, and cleans up afterwards.
 */
import { countsDiff, percentile, requestCounts, sleep, type Timed } from "../lib.ts";

export interface IpsPod {
  name: string;
  uid: string;
  node: string;
}

export interface IpsPlugin {
  name: string;
  add(containerId: string, pod: IpsPod, killAfterMs: number): Promise<Timed>;
  del(containerId: string, pod: IpsPod, killAfterMs: number): Promise<Timed>;
  inPool(address: string): boolean;
}

export interface IpsOptions {
  /** CNI calls (ADD, or the DEL of a failed sandbox) in flight per node at most. */
  perNode: number;
  /** The kubelet's back-off before a new sandbox: this, plus up to half of it again at random. */
  backoffMs: number;
  /** No new attempt starts after this long (ms from the start); pods not served by then count as not served. */
  deadlineMs: number;
  /** A CNI call still running after this long is killed and counted as failed (the runtime gives up on it). */
  killAfterMs: number;
  /** The API server's /metrics text (admin), to count requests by verb, resource and status over the phase. */
  metrics: () => Promise<string>;
}

export interface IpsResult {
  plugin: string;
  pods: number;
  served: number;
  allServed: boolean;
  /** First ADD spawned → last successful ADD's exit (or the end, when not all were served). */
  wallMs: number;
  attempts: number;
  failedAttempts: number;
  /** Failed ADDs by CNI error code ("killed" for ours, "exit N" without a CNI error on stdout). */
  failedByCode: Record<string, number>;
  /** Failed ADDs with code 11 whose message speaks of a deadline, timeout or giving up. */
  failedByDeadline: number;
  /** The first message of each code, for the reader. */
  firstMessage: Record<string, string>;
  delFailures: number;
  distinctAddresses: number;
  /** Served addresses that are duplicates or outside the pool. */
  addressProblems: string[];
  /** Successful ADDs' own time, spawn → exit, ms. */
  addP50: number;
  addP99: number;
  /** Requests the API server answered during the phase, by "VERB resource code" (everyone's, the bench makes none meanwhile). */
  requests: Record<string, number>;
  /** The served sandboxes, for the caller's cleanup. */
  sandboxes: { pod: IpsPod; containerId: string; address: string }[];
}

/** CNI error code and message from a failed call's stdout (CNI error JSON), or what is known without it. */
function failureOf(r: Timed): { code: string; msg: string } {
  if (r.status === -1) return { code: "killed", msg: `still running after the kill timeout; stderr: ${r.stderr.trim().slice(-300)}` };
  try {
    const e = JSON.parse(r.stdout) as { code?: number; msg?: string; details?: string };
    if (typeof e.code === "number") return { code: String(e.code), msg: `${e.msg ?? ""}${e.details ? `: ${e.details}` : ""}` };
  } catch {
    // not a CNI error document
  }
  return { code: `exit ${r.status}`, msg: `${r.stdout.trim()} ${r.stderr.trim()}`.slice(0, 300) };
}
const DEADLINE_WORDS = /deadline|time[ds]? ?out|gave up|giving up/i;

/** A per-node semaphore: FIFO waiters, at most `limit` holders. */
class Slots {
  private held = 0;
  private waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async take(): Promise<void> {
    if (this.held < this.limit) {
      this.held++;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held--;
  }
}

export async function ipsPods(plugin: IpsPlugin, pods: IpsPod[], newContainer: () => string, o: IpsOptions, progress: (s: string) => void): Promise<IpsResult> {
  const slots = new Map<string, Slots>();
  const slot = (node: string) => {
    let s = slots.get(node);
    if (!s) slots.set(node, (s = new Slots(o.perNode)));
    return s;
  };
  const failedByCode: Record<string, number> = {};
  const firstMessage: Record<string, string> = {};
  let failedByDeadline = 0;
  let attempts = 0;
  let delFailures = 0;
  const addMs: number[] = [];
  const sandboxes: IpsResult["sandboxes"] = [];
  const before = requestCounts(await o.metrics());
  const t0 = process.hrtime.bigint();
  let firstSpawn: bigint | undefined;
  let lastServed = t0;
  const elapsedMs = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const ticker = setInterval(
    () =>
      progress(
        `${plugin.name}: ${sandboxes.length} of ${pods.length} served, ${Object.values(failedByCode).reduce((a, b) => a + b, 0)} failed attempts, ${(elapsedMs() / 1000).toFixed(0)} s`,
      ),
    30_000,
  );

  const serve = async (pod: IpsPod): Promise<void> => {
    const s = slot(pod.node);
    while (elapsedMs() < o.deadlineMs) {
      await s.take();
      const id = newContainer();
      attempts++;
      const r = await plugin.add(id, pod, o.killAfterMs);
      if (firstSpawn === undefined || r.t0 < firstSpawn) firstSpawn = r.t0;
      let address: string | undefined;
      if (r.status === 0) {
        try {
          const a = (JSON.parse(r.stdout) as { ips?: { address?: string }[] }).ips?.[0]?.address;
          if (typeof a === "string") address = a.split("/")[0];
        } catch {
          // counted below as a failure
        }
      }
      if (address) {
        s.give();
        addMs.push(r.ms);
        sandboxes.push({ pod, containerId: id, address });
        if (r.t1 > lastServed) lastServed = r.t1;
        return;
      }
      const f = r.status === 0 ? { code: "no address", msg: r.stdout.trim().slice(0, 300) } : failureOf(r);
      failedByCode[f.code] = (failedByCode[f.code] ?? 0) + 1;
      firstMessage[f.code] ??= f.msg.slice(0, 400);
      if (f.code === "11" && DEADLINE_WORDS.test(f.msg)) failedByDeadline++;
      // The runtime tears the failed sandbox down: CNI DEL of the same container ID.
      const d = await plugin.del(id, pod, o.killAfterMs);
      if (d.status !== 0) delFailures++;
      s.give();
      await sleep(o.backoffMs * (1 + Math.random() / 2));
    }
  };
  await Promise.all(pods.map(serve));
  clearInterval(ticker);
  const requests = countsDiff(before, requestCounts(await o.metrics()));

  const served = sandboxes.length;
  const allServed = served === pods.length;
  const start = firstSpawn ?? t0;
  const end = allServed ? lastServed : process.hrtime.bigint();
  const failedAttempts = Object.values(failedByCode).reduce((a, b) => a + b, 0);
  return {
    plugin: plugin.name,
    pods: pods.length,
    served,
    allServed,
    wallMs: Number(end - start) / 1e6,
    attempts,
    failedAttempts,
    failedByCode,
    failedByDeadline,
    firstMessage,
    delFailures,
    ...addressesJudged(plugin, sandboxes),
    addP50: percentile(addMs, 50),
    addP99: percentile(addMs, 99),
    requests,
    sandboxes,
  };
}

/** The served addresses: how many distinct, and which are duplicates or outside the pool. */
function addressesJudged(plugin: IpsPlugin, sandboxes: IpsResult["sandboxes"]): { distinctAddresses: number; addressProblems: string[] } {
  const addrs = sandboxes.map((x) => x.address);
  const addressProblems: string[] = [];
  const seen = new Set<string>();
  for (const a of addrs) {
    if (seen.has(a)) addressProblems.push(`${a} given twice`);
    seen.add(a);
  }
  for (const a of addrs) if (!plugin.inPool(a)) addressProblems.push(`${a} outside the pool`);
  return { distinctAddresses: new Set(addrs).size, addressProblems };
}

/** Requests of `verb` to `resource` answered with `code` (e.g. "POST berthipclaims 409"). */
export const requestsOf = (r: IpsResult, verb: string, resource: string, code?: string): number =>
  Object.entries(r.requests)
    .filter(([k]) => {
      const [v, res, c] = k.split(" ");
      return v === verb && res === resource && (code === undefined || c === code);
    })
    .reduce((n, [, v]) => n + v, 0);
