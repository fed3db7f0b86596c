/**
 * What cluster mode needs of the API server, as one small interface: the
 * allocation logic sees only this (a fake serves the unit tests, the real
 * client in kube-client.ts everything else).
 */
import type { LabelSelector } from "../ipam/label-selector.ts";

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
  finalizers?: string[];
}

export interface PodObject {
  metadata: ObjectMeta;
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

export interface NamedObject {
  metadata: ObjectMeta;
}

export interface StatefulSetObject {
  metadata: ObjectMeta;
  spec?: { replicas?: number; ordinals?: { start?: number }; template?: { metadata?: { annotations?: Record<string, string> } } };
}

export interface PoolSpec {
  ipVersion?: number;
  subnet?: string;
  ips?: string[];
  excludeIPs?: string[];
  gateway?: string;
  vlan?: number;
  routes?: { dst: string; gw?: string }[];
  podAffinity?: LabelSelector;
  namespaceAffinity?: LabelSelector;
  nodeAffinity?: LabelSelector;
  namespaceName?: string[];
  nodeName?: string[];
  multusName?: string[];
  default?: boolean;
  disable?: boolean;
}

export interface PoolObject {
  metadata: ObjectMeta;
  spec: PoolSpec;
  status?: Partial<PoolStatus>;
}

export interface ClaimSpec {
  address: string;
  ipVersion: 4 | 6;
  pool: string;
  podNamespace: string;
  podName: string;
  podUID: string;
  containerID: string;
  interface: string;
  node: string;
  statefulSet?: string;
  claimedAt: string;
}

export interface ClaimObject {
  metadata: ObjectMeta;
  spec: ClaimSpec;
}

export interface EndpointIp {
  interface: string;
  ipv4?: string;
  ipv4Pool?: string;
  ipv4Gateway?: string;
  ipv6?: string;
  ipv6Pool?: string;
  ipv6Gateway?: string;
}

export interface EndpointSpec {
  podUID: string;
  node: string;
  containerID?: string;
  ownerControllerType: "StatefulSet" | "None";
  ownerControllerName?: string;
  ips: EndpointIp[];
}

export interface EndpointObject {
  metadata: ObjectMeta;
  spec: EndpointSpec;
}

export interface PoolStatus {
  ipVersion: number;
  allocatedIPCount: number;
  totalIPCount: number;
}

export interface KubeApi {
  /** The server URL, for messages. */
  readonly server: string;
  getPod(namespace: string, name: string): Promise<PodObject | undefined>;
  getNamespace(name: string): Promise<NamedObject | undefined>;
  getNode(name: string): Promise<NamedObject | undefined>;
  getStatefulSet(namespace: string, name: string): Promise<StatefulSetObject | undefined>;
  getPool(name: string): Promise<PoolObject | undefined>;
  listPools(): Promise<PoolObject[]>;
  getClaim(name: string): Promise<ClaimObject | undefined>;
  /**
   * Claims of one pool (label selector), from the API server's watch cache.
   * `fresh`: no older than this moment (for counts); otherwise possibly a
   * moment stale (for hints, where that is harmless).
   */
  listClaims(pool: string, fresh?: boolean): Promise<ClaimObject[]>;
  /** Creates the claim; throws KubeConflictError when the name is taken. */
  createClaim(claim: ClaimObject): Promise<ClaimObject>;
  /** Replaces the claim (metadata.resourceVersion must be set); KubeConflictError on a stale version. */
  updateClaim(claim: ClaimObject): Promise<ClaimObject>;
  /** Deletes the claim if it still has this uid; false when it was already gone. */
  deleteClaim(name: string, uid: string): Promise<boolean>;
  getEndpoint(namespace: string, name: string): Promise<EndpointObject | undefined>;
  createEndpoint(endpoint: EndpointObject): Promise<EndpointObject>;
  updateEndpoint(endpoint: EndpointObject): Promise<EndpointObject>;
  /** Deletes the endpoint if it still has this uid (and, when given, this resourceVersion). */
  deleteEndpoint(namespace: string, name: string, uid: string, resourceVersion?: string): Promise<boolean>;
  /**
   * Merge-patches a pool's status subresource, on condition that the pool is
   * still at `resourceVersion` (KubeConflictError otherwise).
   */
  patchPoolStatus(name: string, resourceVersion: string, status: PoolStatus): Promise<void>;
}
