/**
 * What the controller keeps of each object: only the fields its judgement
 * reads. A full scan of a big cluster (50,000 pods and claims) must fit in
 * the Deployment's 256 MiB; a pod's full JSON is several kilobytes (and a
 * claim's managedFields alone outweigh its spec), the slim copies a few
 * hundred bytes.
 */
import type { NodeObject } from "../kube/controller-api.ts";
import { RECLAIM_ANNOTATION } from "../kube/crd.ts";
import type { ClaimObject, EndpointObject, ObjectMeta, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { lastWriteMs } from "./claim-age.ts";

/** Annotation of a static pod's mirror: the kubelet's UID for the pod. */
const CONFIG_MIRROR_ANNOTATION = "kubernetes.io/config.mirror";

function pick(annotations: Record<string, string> | undefined, key: string): Record<string, string> | undefined {
  return annotations?.[key] === undefined ? undefined : { [key]: annotations[key] };
}

function meta(m: ObjectMeta, extra: Partial<ObjectMeta> = {}): ObjectMeta {
  const out: ObjectMeta = { name: m.name };
  if (m.namespace) out.namespace = m.namespace;
  if (m.uid) out.uid = m.uid;
  if (m.resourceVersion) out.resourceVersion = m.resourceVersion;
  if (m.deletionTimestamp) out.deletionTimestamp = m.deletionTimestamp;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  return out;
}

/** A claim: its spec, identity and version, and its last write time kept as one managedFields entry. */
export function slimClaim(c: ClaimObject): ClaimObject {
  const written = lastWriteMs(c);
  return {
    metadata: meta(c.metadata, {
      creationTimestamp: c.metadata.creationTimestamp,
      generation: c.metadata.generation,
      // lastWriteMs adds its second again: keep the raw latest time.
      managedFields: written === undefined ? undefined : [{ time: new Date(written - 1000).toISOString() }],
    }),
    spec: c.spec,
  };
}

/** A pod: identity, deletion, node, phase, its controller owner (StatefulSet membership) and a mirror pod's annotation. */
export function slimPod(p: PodObject): PodObject {
  const owner = p.metadata.ownerReferences?.find((o) => o.controller);
  return {
    metadata: meta(p.metadata, {
      ownerReferences: owner ? [{ apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, uid: owner.uid, controller: true }] : undefined,
      annotations: pick(p.metadata.annotations, CONFIG_MIRROR_ANNOTATION),
    }),
    spec: p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {},
    status: p.status?.phase ? { phase: p.status.phase } : {},
  };
}

/** A StatefulSet: size, first ordinal, deletion and the reclaim annotation (on the set or its template). */
export function slimStatefulSet(s: StatefulSetObject): StatefulSetObject {
  const spec: NonNullable<StatefulSetObject["spec"]> = {};
  if (s.spec?.replicas !== undefined) spec.replicas = s.spec.replicas;
  if (s.spec?.ordinals) spec.ordinals = { start: s.spec.ordinals.start };
  const tmpl = pick(s.spec?.template?.metadata?.annotations, RECLAIM_ANNOTATION);
  if (tmpl) spec.template = { metadata: { annotations: tmpl } };
  return { metadata: meta(s.metadata, { annotations: pick(s.metadata.annotations, RECLAIM_ANNOTATION) }), spec };
}

/** An endpoint: the addresses it lists per interface. */
export function slimEndpoint(e: EndpointObject): EndpointObject {
  return {
    metadata: meta(e.metadata),
    spec: {
      podUID: e.spec.podUID, node: e.spec.node, ownerControllerType: e.spec.ownerControllerType,
      ips: e.spec.ips.map((i) => ({ interface: i.interface, ...(i.ipv4 ? { ipv4: i.ipv4 } : {}), ...(i.ipv6 ? { ipv6: i.ipv6 } : {}) })),
    },
  };
}

/** A node: its name and Ready condition. */
export function slimNode(n: NodeObject): NodeObject {
  const ready = n.status?.conditions?.find((c) => c.type === "Ready");
  return { metadata: { name: n.metadata.name }, status: ready ? { conditions: [{ type: "Ready", status: ready.status }] } : {} };
}
