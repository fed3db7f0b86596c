/**
 * The REST paths of what the tests and benches touch: `path("pods", { ns,
 * name })`. Every request of the admin client (admin-client.ts) is built
 * with these, so no test spells out an API group or version.
 */
import {
  BERTH_API_VERSION,
  BERTH_GROUP,
  CLAIM_KIND,
  CLAIM_PLURAL,
  ENDPOINT_KIND,
  ENDPOINT_PLURAL,
  IPAMCLAIM_GROUP,
  IPAMCLAIM_KIND,
  IPAMCLAIM_PLURAL,
  IPAMCLAIM_VERSION,
  POOL_GROUP,
  POOL_KIND,
  POOL_PLURAL,
  POOL_VERSION,
} from "../../../plugin/kube/crd.ts";

const CORE = "/api/v1";
const APPS = "/apis/apps/v1";
const RBAC = "/apis/rbac.authorization.k8s.io/v1";
/** What the tests and benches touch: REST prefix, kind, scope. */
export const RESOURCES = {
  namespaces: { prefix: CORE, kind: "Namespace", namespaced: false },
  nodes: { prefix: CORE, kind: "Node", namespaced: false },
  pods: { prefix: CORE, kind: "Pod", namespaced: true },
  serviceaccounts: { prefix: CORE, kind: "ServiceAccount", namespaced: true },
  secrets: { prefix: CORE, kind: "Secret", namespaced: true },
  events: { prefix: CORE, kind: "Event", namespaced: true },
  statefulsets: { prefix: APPS, kind: "StatefulSet", namespaced: true },
  deployments: { prefix: APPS, kind: "Deployment", namespaced: true },
  daemonsets: { prefix: APPS, kind: "DaemonSet", namespaced: true },
  leases: { prefix: "/apis/coordination.k8s.io/v1", kind: "Lease", namespaced: true },
  clusterroles: { prefix: RBAC, kind: "ClusterRole", namespaced: false },
  clusterrolebindings: { prefix: RBAC, kind: "ClusterRoleBinding", namespaced: false },
  subjectaccessreviews: { prefix: "/apis/authorization.k8s.io/v1", kind: "SubjectAccessReview", namespaced: false },
  customresourcedefinitions: { prefix: "/apis/apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", namespaced: false },
  [POOL_PLURAL]: { prefix: `/apis/${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, namespaced: false },
  [CLAIM_PLURAL]: { prefix: `/apis/${BERTH_GROUP}/${BERTH_API_VERSION}`, kind: CLAIM_KIND, namespaced: false },
  [ENDPOINT_PLURAL]: { prefix: `/apis/${BERTH_GROUP}/${BERTH_API_VERSION}`, kind: ENDPOINT_KIND, namespaced: true },
  [IPAMCLAIM_PLURAL]: { prefix: `/apis/${IPAMCLAIM_GROUP}/${IPAMCLAIM_VERSION}`, kind: IPAMCLAIM_KIND, namespaced: true },
} as const;
export type Resource = keyof typeof RESOURCES;

export type Query = Record<string, string | number | boolean | undefined>;

/** `p` with the query's defined parameters appended. */
export function withQuery(p: string, q: Query = {}): string {
  const s = new URLSearchParams(
    Object.entries(q)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  return s ? `${p}${p.includes("?") ? "&" : "?"}${s}` : p;
}

/**
 * REST path of a collection (no name; a namespaced resource without `ns`:
 * across all namespaces), of one object, or of its subresource.
 */
export function path(resource: Resource, where: { ns?: string; name?: string; sub?: string; query?: Query } = {}): string {
  const r = RESOURCES[resource];
  let p = r.prefix;
  if (r.namespaced && where.ns) p += `/namespaces/${where.ns}`;
  p += `/${resource}`;
  if (where.name !== undefined) p += `/${where.name}`;
  if (where.sub) p += `/${where.sub}`;
  return withQuery(p, where.query);
}

/** The resource of an object by its apiVersion and kind (what `apply` sends it to). */
export function resourceOf(apiVersion: string, kind: string): Resource {
  const group = apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.lastIndexOf("/")) : "";
  for (const [name, r] of Object.entries(RESOURCES)) {
    const rGroup = r.prefix === CORE ? "" : r.prefix.split("/")[2];
    if (r.kind === kind && rGroup === group) return name as Resource;
  }
  throw new Error(`apply: no REST path known for ${apiVersion} ${kind} (add it to RESOURCES in test/support/kube/api-paths.ts)`);
}
