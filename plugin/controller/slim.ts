/**
 * What the controller keeps of each object: only the fields its judgement
 * reads. A full scan of a big cluster (50,000 pods and claims) must fit in
 * the Deployment's 256 MiB; a pod's full JSON is several kilobytes (and a
 * claim's managedFields alone outweigh its spec), the slim copies a few
 * hundred bytes (measured with Bun, with their map entries: about 550 B a
 * claim, 260 B a scan's pod record, 160 B an endpoint record).
 */

import { CONFIG_MIRROR_ANNOTATION } from "../cluster/statefulset.ts";
import type { NodeObject } from "../kube/controller-api.ts";
import { RECLAIM_ANNOTATION } from "../kube/crd.ts";
import type { ClaimObject, EndpointObject, ObjectMeta, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { lastWriteMs } from "../reconcile/claim-age.ts";

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

/**
 * A claim: its spec, identity and version; its last write (lastWriteMs) is
 * kept as `creationTimestamp` (the latest of creation and managedFields),
 * without the managedFields themselves.
 */
export function slimClaim(c: ClaimObject): ClaimObject {
  const written = lastWriteMs(c);
  return {
    metadata: meta(c.metadata, {
      // lastWriteMs adds its second again: keep the raw latest time.
      creationTimestamp: written === undefined ? undefined : new Date(written - 1000).toISOString(),
      generation: c.metadata.generation,
    }),
    spec: c.spec,
  };
}

/**
 * A pod in a full scan, as a tuple (a few strings, no objects): UID, phase,
 * deletionTimestamp, node, and a mirror pod's config.mirror annotation (""
 * when absent). Membership is not judged on a scan's word (claims record it).
 */
export type PodRecord = readonly [uid: string, phase: string, deletion: string, node: string, mirror: string];

export function podRecord(p: PodObject): PodRecord {
  return [
    p.metadata.uid ?? "",
    p.status?.phase ?? "",
    p.metadata.deletionTimestamp ?? "",
    p.spec?.nodeName ?? "",
    p.metadata.annotations?.[CONFIG_MIRROR_ANNOTATION] ?? "",
  ];
}

/** The pod a record stands for, with the fields the judgement reads. */
export function podFromRecord(namespace: string, name: string, r: PodRecord): PodObject {
  const [uid, phase, deletion, node, mirror] = r;
  const metadata: ObjectMeta = { name, namespace, uid };
  if (deletion) metadata.deletionTimestamp = deletion;
  if (mirror) metadata.annotations = { [CONFIG_MIRROR_ANNOTATION]: mirror };
  return { metadata, spec: node ? { nodeName: node } : {}, status: phase ? { phase } : {} };
}

/**
 * An endpoint in a full scan: per entry its interface and addresses (with
 * prefix), "eth0 10.6.0.5/16 fd00::5/64|net1 10.7.0.3/24 " (entries by "|",
 * fields by " ", an empty field for a family it lacks).
 */
export function endpointRecord(e: EndpointObject): string {
  return e.spec.ips.map((i) => `${i.interface} ${i.ipv4 ?? ""} ${i.ipv6 ?? ""}`).join("|");
}

/** The endpoint a record stands for, with the fields the judgement reads. */
export function endpointFromRecord(namespace: string, name: string, r: string): EndpointObject {
  const ips = r
    ? r.split("|").map((e) => {
        const [iface, v4, v6] = e.split(" ");
        return { interface: iface, ...(v4 ? { ipv4: v4 } : {}), ...(v6 ? { ipv6: v6 } : {}) };
      })
    : [];
  return { metadata: { name, namespace }, spec: { podUID: "", node: "", ownerControllerType: "None", ips } };
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

/** A node: its name, Ready condition, and kubelet and runtime versions. */
export function slimNode(n: NodeObject): NodeObject {
  const ready = n.status?.conditions?.find((c) => c.type === "Ready");
  const info = n.status?.nodeInfo;
  return {
    metadata: { name: n.metadata.name },
    status: {
      ...(ready ? { conditions: [{ type: "Ready", status: ready.status }] } : {}),
      ...(info ? { nodeInfo: { kubeletVersion: info.kubeletVersion, containerRuntimeVersion: info.containerRuntimeVersion } } : {}),
    },
  };
}
