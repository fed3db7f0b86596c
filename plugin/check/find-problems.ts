/**
 * The cluster checks, on one set of lists (cluster-facts.ts): duplicates,
 * orphan claims, missing claims, phantom bindings, claims outside their
 * pool, drifting counts, and each pool's figures. A finding is a candidate
 * here; confirm.ts re-reads it live before it is reported.
 */
import { isIncarnation, ordinalInRange, retained } from "../cluster/statefulset.ts";
import { countAddresses, inRanges, parseAddress } from "../ipam/ip.ts";
import { ipamClaimNames } from "../ipam/multus-network.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";
import { claimName } from "../kube/claim-name.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import { lastWriteMs } from "../reconcile/claim-age.ts";
import { judgeClaim, type Reader } from "../reconcile/judge-claim.ts";
import { collectGarbage } from "../support/collect-garbage.ts";
import { type ClusterFacts, endpointObject, type PodFacts, podObject } from "./cluster-facts.ts";
import type { ObjectRef, PoolFigures, Problem, ProblemKind } from "./problem.ts";

const key = (ns: string, name: string) => `${ns}/${name}`;
const mapDefined = <T, R>(v: T | undefined, f: (t: T) => R): R | undefined => (v === undefined ? undefined : f(v));

/**
 * A counter that forces a full collection every GC_EVERY objects a check walks. Each object walked leaves
 * garbage (parsed addresses, claim names, the judgement's reader's objects) that piles up in bursts (+70 MiB
 * within a second for 50,000 claims, pods and endpoints). With the collections while listing
 * (cluster-facts.ts), a check of 50,000 of each peaks at ~200 MiB, not 315.
 */
function collecting(): () => void {
  let n = 0;
  return () => {
    if (++n % GC_EVERY === 0) collectGarbage();
  };
}

/** Objects walked between forced collections (one takes ~0.1 s with 50,000 of each kind held). */
const GC_EVERY = 10_000;

export interface Findings {
  problems: Problem[];
  pools: PoolFigures[];
}

/**
 * Every check over `f` (or only the kind `only`). `addTimeoutMs`: the
 * controller's --add-timeout-seconds, for claims' ADD windows.
 */
export async function findProblems(f: ClusterFacts, addTimeoutMs: number, only?: ProblemKind): Promise<Findings> {
  const claimsByName = new Map(f.claims.map((c) => [c.metadata.name, c]));
  const claimOf = (address: string) => {
    const a = parseAddress(address);
    return a ? claimsByName.get(claimName(a.family, a.value)) : undefined;
  };
  const problems: Problem[] = [];
  const run = (kind: ProblemKind) => !only || only === kind;
  const duplicates = duplicateAddresses(f, claimOf, run("duplicate-address") ? problems : []);
  if (run("missing-claim")) missingClaims(f, claimOf, duplicates, problems);
  if (run("phantom-binding")) phantomBindings(f, claimOf, problems);
  if (run("outside-pool")) outsidePool(f, problems);
  if (run("count-drift")) countDrift(f, problems);
  if (run("orphan-claim")) await orphanClaims(f, addTimeoutMs, problems);
  return { problems, pools: poolFigures(f) };
}

function podRef(p: PodFacts): ObjectRef {
  return { kind: "Pod", namespace: p.namespace, name: p.name, resourceVersion: p.resourceVersion };
}

export function claimRef(c: ClaimObject): ObjectRef {
  return { kind: "BerthIPClaim", name: c.metadata.name, resourceVersion: c.metadata.resourceVersion };
}

/** The pool an address is in (its `ips`), by name. */
function poolOf(f: ClusterFacts, address: string): string | undefined {
  const a = parseAddress(address);
  if (!a) return undefined;
  for (const [name, p] of f.pools) if (p.pool && p.pool.family === a.family && inRanges(a.value, p.pool.ips)) return name;
  return undefined;
}

/** Live pods by the addresses they show. */
function shownBy(f: ClusterFacts): Map<string, { pod: PodFacts; where: string }[]> {
  const out = new Map<string, { pod: PodFacts; where: string }[]>();
  for (const pod of f.pods.values()) {
    if (!pod.live) continue;
    for (const s of pod.shown) out.set(s.address, [...(out.get(s.address) ?? []), { pod, where: s.where }]);
  }
  return out;
}

/** duplicate-address: one address shown by two live pods. Returns the addresses found. */
function duplicateAddresses(f: ClusterFacts, claimOf: (a: string) => ClaimObject | undefined, problems: Problem[]): Set<string> {
  const found = new Set<string>();
  for (const [address, showing] of shownBy(f)) {
    const pods = [...new Map(showing.map((s) => [key(s.pod.namespace, s.pod.name), s])).values()];
    if (pods.length < 2) continue;
    const claim = claimOf(address);
    // The pods of one VM (a live migration's source and target) share its IPAMClaim's address by design.
    if (pods.every((s) => namesClaimsIpamClaim(s.pod, claim))) continue;
    found.add(address);
    const holder = claim ? key(claim.spec.podNamespace, claim.spec.podName) : undefined;
    const others = pods.map((s) => key(s.pod.namespace, s.pod.name)).filter((p) => p !== holder);
    problems.push({
      kind: "duplicate-address",
      address,
      pool: claim?.spec.pool ?? poolOf(f, address),
      pods: pods.map((s) => key(s.pod.namespace, s.pod.name)).sort(),
      objects: [...pods.map((s) => podRef(s.pod)), ...(claim ? [claimRef(claim)] : [])],
      detail: `shown by ${pods.length} live pods: ${pods.map((s) => `${s.pod.namespace}/${s.pod.name} (${s.where})`).join(", ")}; ${holder ? `its claim names ${holder}` : "no claim holds it"}`,
      action: `Restart ${others.join(" and ")} (kubectl delete pod): ${others.length > 1 ? "they get" : "it gets"} a new address${holder ? `, and ${holder} keeps this one` : ""}.`,
    });
  }
  return found;
}

/** missing-claim: a live pod shows an address of a berth pool that no claim holds for it. */
function missingClaims(f: ClusterFacts, claimOf: (a: string) => ClaimObject | undefined, duplicates: Set<string>, problems: Problem[]): void {
  const tick = collecting();
  for (const pod of f.pods.values()) {
    tick();
    if (!pod.live) continue;
    for (const s of pod.shown) {
      if (duplicates.has(s.address)) continue;
      const claim = claimOf(s.address);
      if (claim && claim.spec.podNamespace === pod.namespace && claim.spec.podName === pod.name) continue;
      if (namesClaimsIpamClaim(pod, claim)) continue; // held by the IPAMClaim it names, for any of its pods
      const other = claim ? key(claim.spec.podNamespace, claim.spec.podName) : undefined;
      problems.push({
        kind: "missing-claim",
        address: s.address,
        pool: claim?.spec.pool ?? poolOf(f, s.address),
        pods: [key(pod.namespace, pod.name)],
        objects: [podRef(pod), ...(claim ? [claimRef(claim)] : [])],
        detail: `${pod.namespace}/${pod.name} shows it (${s.where}), but ${other ? `its claim names ${other}, which does not show it` : "no claim holds it"}`,
        action: other
          ? `Find out which pod really uses it; restart ${pod.namespace}/${pod.name} so that its ADD claims an address of its own.`
          : `Run berth check --repair to claim it for ${pod.namespace}/${pod.name} (nobody else holds it), or restart the pod.`,
      });
    }
  }
}

/** phantom-binding: an endpoint lists an address whose claim is another pod's, or gone while its pod does not show it. */
function phantomBindings(f: ClusterFacts, claimOf: (a: string) => ClaimObject | undefined, problems: Problem[]): void {
  const tick = collecting();
  for (const ep of f.endpoints) {
    tick();
    const pod = f.pods.get(key(ep.namespace, ep.name));
    for (const entry of ep.entries) {
      for (const address of entry.addresses) {
        const claim = claimOf(address);
        if (claim && claim.spec.podNamespace === ep.namespace && claim.spec.podName === ep.name) continue;
        // Its own pod shows it: the pod's address whoever's claim it is (missing-claim, duplicate), never a phantom.
        if (pod?.live && pod.shown.some((s) => s.address === address)) continue;
        const other = claim ? key(claim.spec.podNamespace, claim.spec.podName) : undefined;
        problems.push({
          kind: "phantom-binding",
          address,
          pool: claim?.spec.pool ?? poolOf(f, address),
          pods: [key(ep.namespace, ep.name), ...(other ? [other] : [])],
          objects: [
            { kind: "BerthEndpoint", namespace: ep.namespace, name: ep.name, resourceVersion: ep.resourceVersion },
            ...(claim ? [claimRef(claim)] : []),
          ],
          detail: `BerthEndpoint ${ep.namespace}/${ep.name} lists it on ${entry.interface}, but ${other ? `its claim names ${other}` : "its claim is gone"}`,
          action: "The controller strips it at its next full scan; berth check --repair strips it now.",
        });
      }
    }
  }
}

/** outside-pool: a claimed address no longer in its pool's `ips`, or now excluded (pools edited under running pods). */
function outsidePool(f: ClusterFacts, problems: Problem[]): void {
  const tick = collecting();
  for (const c of f.claims) {
    tick();
    const p = f.pools.get(c.spec.pool);
    if (p && !p.pool) continue; // an invalid spec: the pool's own error, not this claim's
    const a = parseAddress(c.spec.address);
    let why: string | undefined;
    if (!p) why = `its pool ${c.spec.pool} does not exist`;
    else if (!a || a.family !== p.pool!.family || !inRanges(a.value, p.pool!.ips)) why = `it is no longer in pool ${c.spec.pool}'s ips`;
    else if (!inRanges(a.value, p.pool!.ranges)) why = `pool ${c.spec.pool} now excludes it (excludeIPs or its gateway)`;
    if (!why) continue;
    const pod = key(c.spec.podNamespace, c.spec.podName);
    problems.push({
      kind: "outside-pool",
      address: c.spec.address,
      pool: c.spec.pool,
      pods: [pod],
      objects: [claimRef(c), ...(p ? [{ kind: "SpiderIPPool", name: c.spec.pool, resourceVersion: p.object.metadata.resourceVersion }] : [])],
      detail: `claimed by ${pod}, but ${why}`,
      action: `${pod} keeps it until it goes (berth never moves a running pod): restart it to take an address of the pool as it is now, or undo the pool's edit.`,
    });
  }
}

/** count-drift: a pool's status counts disagree with its claims (only while a controller leads: it keeps them). */
function countDrift(f: ClusterFacts, problems: Problem[]): void {
  if (!f.controllerLeads) return;
  const claimed = claimsPerPool(f);
  for (const [name, p] of f.pools) {
    if (!p.pool) continue;
    const s = p.object.status ?? {};
    const want = { allocatedIPCount: claimed.get(name) ?? 0, totalIPCount: Number(p.pool.total) };
    if (s.allocatedIPCount === want.allocatedIPCount && s.totalIPCount === want.totalIPCount) continue;
    problems.push({
      kind: "count-drift",
      pool: name,
      objects: [{ kind: "SpiderIPPool", name, resourceVersion: p.object.metadata.resourceVersion }],
      detail: `status says ${s.allocatedIPCount ?? "nothing"} of ${s.totalIPCount ?? "nothing"} allocated; its claims say ${want.allocatedIPCount} of ${want.totalIPCount}`,
      action: "The controller rewrites the counts within a second of a change: if they stay wrong, read its log; berth check --repair rewrites them now.",
    });
  }
}

function claimsPerPool(f: ClusterFacts): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of f.claims) out.set(c.spec.pool, (out.get(c.spec.pool) ?? 0) + 1);
  return out;
}

/** A Reader over the lists, for the controller's own judgement. */
export function factsReader(f: ClusterFacts): Reader {
  const eps = new Map(f.endpoints.map((e) => [key(e.namespace, e.name), e]));
  return {
    getPod: async (ns, name) => mapDefined(f.pods.get(key(ns, name)), podObject),
    getStatefulSet: async (ns, name) => f.statefulSets.get(key(ns, name)),
    getEndpoint: async (ns, name) => mapDefined(eps.get(key(ns, name)), endpointObject),
    getNode: async (name) => f.nodes.get(name),
    // IPAMClaim-held claims: judged only when the IPAMClaims could be listed (else held, never an orphan).
    ...(f.ipamClaims
      ? {
          getIpamClaim: async (ns: string, name: string) => f.ipamClaims!.get(key(ns, name)),
          listPodsIn: async (ns: string) => [...f.pods.values()].filter((p) => p.namespace === ns).map(podObject),
        }
      : {}),
  };
}

/** Whether the claim is an IPAMClaim's that the pod names (pod and IPAMClaim share a namespace). */
function namesClaimsIpamClaim(pod: PodFacts, claim: ClaimObject | undefined): boolean {
  const ic = claim?.spec.ipamClaim;
  return !!ic && pod.namespace === claim!.spec.podNamespace && ipamClaimNames(podObject(pod).metadata.annotations, pod.namespace).includes(ic.name);
}

/** orphan-claim: a claim whose holder is provably gone by the controller's own judgement, not released yet. */
async function orphanClaims(f: ClusterFacts, addTimeoutMs: number, problems: Problem[]): Promise<void> {
  const reader = factsReader(f);
  const tick = collecting();
  for (const c of f.claims) {
    tick();
    const v = await judgeClaim(reader, c, { addTimeoutMs, graceMarginMs: 5000, now: f.now });
    if (!v.release) continue;
    const written = lastWriteMs(c);
    const pod = key(c.spec.podNamespace, c.spec.podName);
    problems.push({
      kind: "orphan-claim",
      address: c.spec.address,
      pool: c.spec.pool,
      pods: [pod],
      objects: [claimRef(c)],
      age: written === undefined ? undefined : Math.max(0, Math.round((f.now - written) / 1000)),
      rule: v.reason,
      detail: v.detail,
      action:
        v.reason === "half-finished-add"
          ? "The controller releases it once it has seen it unbound for its ADD's whole window: is a controller running and leading?"
          : "The controller releases it: is one running and leading? berth check --repair releases it now.",
    });
  }
}

/** Each pool's figures. */
function poolFigures(f: ClusterFacts): PoolFigures[] {
  const claimed = claimsPerPool(f);
  const retainedIn = new Map<string, number>();
  for (const c of f.claims) {
    const set = c.spec.statefulSet;
    const ordinal = set ? ordinalOf(c.spec.podName, set) : undefined;
    if (!set || ordinal === undefined) continue;
    const pod = f.pods.get(key(c.spec.podNamespace, c.spec.podName));
    if (pod && isIncarnation(podObject(pod), c.spec.podUID)) continue; // its pod is there: not kept for one that is gone
    const sts = f.statefulSets.get(key(c.spec.podNamespace, set));
    if (sts && !sts.metadata.deletionTimestamp && retained(sts) && !ordinalInRange(sts, ordinal))
      retainedIn.set(c.spec.pool, (retainedIn.get(c.spec.pool) ?? 0) + 1);
  }
  const out: PoolFigures[] = [];
  for (const [name, p] of [...f.pools].sort(([a], [b]) => a.localeCompare(b))) {
    const total = p.pool ? Number(p.pool.total) : 0;
    const n = claimed.get(name) ?? 0;
    const excluded = p.pool ? Number(countAddresses(p.pool.ips) - p.pool.total) : 0;
    out.push({ name, total, claimed: n, free: total - n, retained: retainedIn.get(name) ?? 0, excluded });
  }
  return out;
}
