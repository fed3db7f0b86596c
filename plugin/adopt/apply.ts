/**
 * Carries out adopt's plan, optimistically: every write is a create, or a
 * replace at the resourceVersion read, so a berth ADD or another adopt
 * racing with it wins or loses cleanly. A create that finds the claim taken
 * re-reads it: this pod's, on this interface, is a skip; anyone else's a
 * conflict, left alone.
 */
import { withEntryUids } from "../cluster/endpoint-entries.ts";
import type { AdoptApi } from "../kube/adopt-client.ts";
import { ADOPTED_FROM_LABEL } from "../kube/crd.ts";
import type { EndpointIp, EndpointSpec } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Plan, Planned, Write } from "./plan.ts";
import type { Source } from "./source-record.ts";

/** Writes the plan; returns it with each item's outcome (a lost race turns an adopt into a skip or conflict). */
export async function applyPlan(api: AdoptApi, plan: Plan, source: Source): Promise<Planned[]> {
  await excludeReserved(api, plan);
  const out: Planned[] = [];
  const entries = new Map<string, Write[]>();
  for (const item of plan.plan) {
    const done = item.write && item.action === "adopt" ? await writeClaim(api, item) : item;
    out.push(done);
    if (done.write && done.action !== "conflict") {
      const key = `${done.write.endpoint.namespace}/${done.write.endpoint.name}`;
      entries.set(key, [...(entries.get(key) ?? []), done.write]);
    }
  }
  for (const writes of entries.values()) await writeEndpoint(api, writes, source);
  return out.map(({ write, ...rest }) => rest);
}

async function writeClaim(api: AdoptApi, item: Planned): Promise<Planned> {
  const w = item.write!;
  try {
    if (w.replaces) await api.updateClaim(w.claim);
    else await api.createClaim(w.claim);
    return item;
  } catch (err) {
    if (!isKind(err, KubeConflictError)) throw err;
  }
  const now = await api.getClaim(w.claim.metadata.name);
  const s = now?.spec;
  if (s && s.podNamespace === w.claim.spec.podNamespace && s.podName === w.claim.spec.podName && s.interface === w.claim.spec.interface) {
    return { ...item, action: "skip", reason: "berth took it for this pod meanwhile", write: { ...w, claim: now } };
  }
  const who = s ? `pod ${s.podNamespace}/${s.podName} interface ${s.interface}` : "nobody (it changed while adopt wrote it; run adopt again)";
  return { ...item, action: "conflict", reason: `berth holds it for ${who}; left alone`, write: undefined };
}

/**
 * Writes the pod's endpoint entries as berth's ADD would have: one per
 * interface, naming the incarnation; other interfaces' entries stay.
 */
async function writeEndpoint(api: AdoptApi, writes: Write[], source: Source): Promise<void> {
  const { namespace, name, podUID, node, containerID, statefulSet } = writes[0].endpoint;
  for (let attempt = 0; attempt < 5; attempt++) {
    const ep = await api.getEndpoint(namespace, name);
    const ips = ep ? withEntryUids(ep) : [];
    let changed = false;
    for (const w of writes) {
      const i = ips.findIndex((e) => e.interface === w.entry.interface);
      const merged: EndpointIp = i < 0 ? w.entry : { ...ips[i], ...w.entry };
      if (i >= 0 && JSON.stringify(merged) === JSON.stringify(ips[i])) continue;
      if (i < 0) ips.push(merged);
      else ips[i] = merged;
      changed = true;
    }
    if (!changed) return;
    const spec: EndpointSpec = {
      podUID,
      node,
      ...(containerID ? { containerID } : {}),
      ownerControllerType: statefulSet ? "StatefulSet" : "None",
      ...(statefulSet ? { ownerControllerName: statefulSet } : {}),
      ips,
    };
    try {
      if (ep) await api.updateEndpoint({ metadata: ep.metadata, spec });
      else await api.createEndpoint({ metadata: { name, namespace, labels: { [ADOPTED_FROM_LABEL]: source } }, spec });
      return;
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err;
    }
  }
  throw new Error(`endpoint ${namespace}/${name} kept changing while adopt wrote it; run adopt again`);
}

/** SpiderReservedIP addresses into the excludeIPs of the pools that cover them. */
async function excludeReserved(api: AdoptApi, plan: Plan): Promise<void> {
  for (const note of plan.pools.filter((n) => n.excludeIPs?.length)) {
    for (let attempt = 0; ; attempt++) {
      const pool = attempt === 0 ? plan.poolObjects.get(note.name) : await api.getPool(note.name);
      if (!pool) break;
      const have = pool.spec.excludeIPs ?? [];
      const add = note.excludeIPs!.filter((a) => !have.includes(a));
      if (!add.length) break;
      try {
        await api.setPoolExcludeIPs(pool, [...have, ...add]);
        break;
      } catch (err) {
        if (!isKind(err, KubeConflictError) || attempt >= 4) throw err;
      }
    }
  }
}
