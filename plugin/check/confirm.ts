/**
 * A finding on a set of lists may be a race in flight: an ADD between its
 * claim and its endpoint, a DEL between its claim and its endpoint entry, a
 * count half a second behind. Each one is judged again, once, on live reads
 * of the objects it involves, by the same check; what does not hold up is
 * not reported.
 */

import { toPool } from "../cluster/pool-choice.ts";
import { parseAddress } from "../ipam/ip.ts";
import { claimName } from "../kube/claim-name.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import { lastWriteMs } from "../reconcile/claim-age.ts";
import { judgeClaim } from "../reconcile/judge-claim.ts";
import { type ClusterFacts, type EndpointFacts, type PodFacts, podFacts } from "./cluster-facts.ts";
import { claimRef, findProblems } from "./find-problems.ts";
import type { Problem } from "./problem.ts";

/** How long a drifting count is given before it is read again: the controller writes counts within 0.5 s of a change. */
const COUNT_SETTLE_MS = 1000;

/** The problems that hold up on live reads (with the versions they were judged on then). */
export async function confirmAll(api: ControllerApi, facts: ClusterFacts, candidates: Problem[], addTimeoutMs: number): Promise<Problem[]> {
  if (candidates.some((p) => p.kind === "count-drift")) await new Promise((r) => setTimeout(r, COUNT_SETTLE_MS));
  const out: Problem[] = [];
  for (const c of candidates) {
    const again = await confirm(api, facts, c, addTimeoutMs);
    if (again) out.push(again);
  }
  return out;
}

/** `candidate` judged again on live reads of what it involves, or undefined when it does not hold any more. */
async function confirm(api: ControllerApi, facts: ClusterFacts, candidate: Problem, addTimeoutMs: number): Promise<Problem | undefined> {
  if (candidate.kind === "orphan-claim") return confirmOrphan(api, candidate, addTimeoutMs);
  const live = await liveFacts(api, facts, candidate);
  const { problems } = await findProblems(live, addTimeoutMs, candidate.kind);
  return problems.find((p) => p.address === candidate.address && p.pool === candidate.pool && samePods(p, candidate));
}

/** An orphan claim judged again as the controller judges it, on the live API server. */
async function confirmOrphan(api: ControllerApi, c: Problem, addTimeoutMs: number): Promise<Problem | undefined> {
  const a = c.address ? parseAddress(c.address) : undefined;
  const claim = a ? await api.getClaim(claimName(a.family, a.value)) : undefined;
  if (!claim) return undefined;
  const now = api.serverNow();
  const v = await judgeClaim(api, claim, { addTimeoutMs, graceMarginMs: 5000, now });
  if (!v.release) return undefined;
  const written = lastWriteMs(claim);
  return {
    ...c,
    objects: [claimRef(claim)],
    ...(written === undefined ? {} : { age: Math.max(0, Math.round((now - written) / 1000)) }),
    rule: v.reason,
    detail: v.detail,
  };
}

function samePods(a: Problem, b: Problem): boolean {
  // A duplicate may have lost a pod meanwhile (then it is judged on those left); anything else names the same ones.
  if (a.kind === "duplicate-address") return true;
  return JSON.stringify(a.pods ?? []) === JSON.stringify(b.pods ?? []);
}

/** The facts of one candidate, read live: its pool, claim, pods and endpoints (StatefulSets and nodes from the lists). */
async function liveFacts(api: ControllerApi, facts: ClusterFacts, c: Problem): Promise<ClusterFacts> {
  const pools = new Map(facts.pools);
  if (c.pool) {
    const object = await api.getPool(c.pool);
    if (!object) pools.delete(c.pool);
    else {
      try {
        pools.set(c.pool, { object, pool: toPool(object) });
      } catch (err) {
        pools.set(c.pool, { object, error: (err as Error).message });
      }
    }
  }
  const covered = [...pools.values()].flatMap((p) => (p.pool ? [p.pool] : []));
  let claims: ClaimObject[] = [];
  if (c.kind === "count-drift" && c.pool) claims = await api.listClaims(c.pool, true);
  else if (c.address) {
    const a = parseAddress(c.address);
    const claim = a ? await api.getClaim(claimName(a.family, a.value)) : undefined;
    claims = claim ? [claim] : [];
  }
  const pods = new Map<string, PodFacts>();
  for (const ref of c.pods ?? []) {
    const [ns, name] = ref.split("/");
    const pod = await api.getPod(ns, name);
    if (pod) pods.set(ref, podFacts(pod, covered));
  }
  const endpoints: EndpointFacts[] = [];
  for (const o of c.objects ?? []) {
    if (o.kind !== "BerthEndpoint" || !o.namespace) continue;
    const e = await api.getEndpoint(o.namespace, o.name);
    if (e) {
      endpoints.push({
        namespace: o.namespace,
        name: o.name,
        resourceVersion: e.metadata.resourceVersion,
        entries: e.spec.ips.map((i) => ({
          interface: i.interface,
          podUID: i.podUID ?? e.spec.podUID,
          addresses: [i.ipv4, i.ipv6].filter((x): x is string => !!x).map((x) => x.split("/")[0]),
        })),
      });
    }
  }
  return { ...facts, pools, claims, pods, endpoints, now: api.serverNow() };
}
