/**
 * What cluster mode needs of the API server, as one small interface: the
 * allocation logic sees only this (a fake serves the unit tests, the real
 * client in kube-client.ts everything else).
 */
import type { PoolAffinity } from "../ipam/pool-affinity.ts";

/** metadata.ownerReferences entry: who owns an object (a pod's StatefulSet). */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

/** The metadata fields berth reads or writes; the server's JSON may carry more. */
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
  /** Incremented by the server on every change of a custom object's spec (1 when never changed since its creation). */
  generation?: number;
  /** Server-side field ownership; each entry's `time` is when its manager last took fields of the object (set by the server). */
  managedFields?: { manager?: string; operation?: string; time?: string }[];
}

/** A pod, as far as berth looks at it: where it runs and whether it has finished. */
export interface PodObject {
  metadata: ObjectMeta;
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

/** An object berth only needs to exist, or to read labels from (namespaces, nodes). */
export interface NamedObject {
  metadata: ObjectMeta;
}

/** A StatefulSet: its size, first ordinal and pod template annotations decide which bindings stay. */
export interface StatefulSetObject {
  metadata: ObjectMeta;
  spec?: { replicas?: number; ordinals?: { start?: number }; template?: { metadata?: { annotations?: Record<string, string> } } };
}

/** SpiderIPPool spec (spiderpool.spidernet.io/v2beta1), the fields berth honours: its affinity fields are ipam's PoolAffinity. */
export interface PoolSpec extends PoolAffinity {
  ipVersion?: number;
  subnet?: string;
  ips?: string[];
  excludeIPs?: string[];
  gateway?: string;
  vlan?: number;
  routes?: { dst: string; gw?: string }[];
  default?: boolean;
  disable?: boolean;
}

/** A SpiderIPPool. */
export interface PoolObject {
  metadata: ObjectMeta;
  spec: PoolSpec;
  status?: Partial<PoolStatus>;
}

/** BerthIPClaim spec: one address, its pool, and the pod, container and node holding it. */
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
  /**
   * The network (netconf `name`) whose ADD took the address; absent on
   * claims written by berth 0.4 and earlier.
   */
  network?: string;
  /**
   * The pod is a static pod: `podUID` is the kubelet's UID for it (its
   * mirror pod's `kubernetes.io/config.mirror`), and deleting the mirror pod
   * does not stop it, so the claim goes only by its DEL or with its node.
   */
  staticPod?: boolean;
  claimedAt: string;
  /**
   * The address belongs to this IPAMClaim (in `podNamespace`), held by its
   * UID: a recreated IPAMClaim of the same name is another holder. The pod
   * fields then name the pod that took it last (a VM's virt-launcher pod).
   */
  ipamClaim?: { name: string; uid: string };
  /**
   * Seconds after the claim's last write, by the API server's clock, during
   * which its ADD may still be running: the controller never judges it
   * half-finished before then. Absent on claims written by berth 0.3.
   */
  addDeadlineSeconds?: number;
}

/** A BerthIPClaim: the cluster-wide lock on one address (named by claim-name.ts). */
export interface ClaimObject {
  metadata: ObjectMeta;
  spec: ClaimSpec;
}

/**
 * One interface's addresses in a BerthEndpoint: the binding of one
 * attachment (network and interface) of the pod.
 */
export interface EndpointIp {
  interface: string;
  /** The network whose ADD wrote this entry (absent on entries written by berth 0.4). */
  network?: string;
  /**
   * The pod incarnation this entry's addresses were taken for; absent on
   * entries written by berth 0.4, which mean the endpoint's `podUID`.
   */
  podUID?: string;
  ipv4?: string;
  ipv4Pool?: string;
  ipv4Gateway?: string;
  ipv6?: string;
  ipv6Pool?: string;
  ipv6Gateway?: string;
}

/** BerthEndpoint spec: the pod's addresses and who owns the pod (a StatefulSet keeps them). */
export interface EndpointSpec {
  /** The incarnation that wrote the endpoint last (each entry names its own, `EndpointIp.podUID`). */
  podUID: string;
  node: string;
  containerID?: string;
  ownerControllerType: "StatefulSet" | "None";
  ownerControllerName?: string;
  ips: EndpointIp[];
}

/** A BerthEndpoint: per pod, the addresses it was given (named and namespaced as the pod). */
export interface EndpointObject {
  metadata: ObjectMeta;
  spec: EndpointSpec;
}

/** A condition of an IPAMClaim's status (metav1.Condition). */
export interface IpamClaimCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** An IPAMClaim (k8s.cni.cncf.io/v1alpha1, multi-network spec v1.3): a VM interface's persistent addresses. */
export interface IpamClaimObject {
  metadata: ObjectMeta;
  spec: { network: string; interface: string };
  status?: { ips?: string[]; ownerPod?: { name?: string }; conditions?: IpamClaimCondition[] };
}

/** The counts the controller keeps in a SpiderIPPool's status (the plugin never writes them). */
export interface PoolStatus {
  ipVersion: number;
  allocatedIPCount: number;
  totalIPCount: number;
}

/** The API server as the CNI plugin (cluster mode) uses it. Failures are the kinds in kube-errors.ts. */
export interface KubeApi {
  /** The server URL, for messages. */
  readonly server: string;
  /** The pod, or undefined when there is none; so for every `get`. */
  getPod(namespace: string, name: string): Promise<PodObject | undefined>;
  getNamespace(name: string): Promise<NamedObject | undefined>;
  getNode(name: string): Promise<NamedObject | undefined>;
  getStatefulSet(namespace: string, name: string): Promise<StatefulSetObject | undefined>;
  getPool(name: string): Promise<PoolObject | undefined>;
  /** Every SpiderIPPool (a consistent read). */
  listPools(): Promise<PoolObject[]>;
  /**
   * Adds berth's finalizer (crd.ts POOL_FINALIZER) to the pool's finalizers
   * as read, on condition that the pool is still at that resourceVersion:
   * KubeConflictError if it changed meanwhile (read it again), so a
   * finalizer written concurrently is never lost or doubled.
   */
  addPoolFinalizer(pool: PoolObject): Promise<void>;
  getClaim(name: string): Promise<ClaimObject | undefined>;
  /**
   * Claims of one pool (label selector), from the API server's watch cache.
   * `fresh`: no older than this moment (the controller's last check before
   * a pool's finalizer goes; a consistent read from etcd, whose cost grows
   * with every claim in the cluster); otherwise possibly a moment stale
   * (the plugin's hints, where that is harmless).
   */
  listClaims(pool: string, fresh?: boolean): Promise<ClaimObject[]>;
  /** Creates the claim; throws KubeConflictError when the name is taken. */
  createClaim(claim: ClaimObject): Promise<ClaimObject>;
  /** Replaces the claim (metadata.resourceVersion must be set); KubeConflictError on a stale version or when it was deleted meanwhile. */
  updateClaim(claim: ClaimObject): Promise<ClaimObject>;
  /**
   * Deletes the claim if it still has this uid (and, when given, this
   * resourceVersion); false when it was already gone, KubeConflictError when
   * it changed.
   */
  deleteClaim(name: string, uid: string, resourceVersion?: string): Promise<boolean>;
  /**
   * Claims held by the IPAMClaim with this UID (label selector, a consistent
   * read: an ADD must see a claim another ADD just made).
   */
  listClaimsOfIpamClaim(uid: string): Promise<ClaimObject[]>;
  /** The IPAMClaim, or undefined when there is none (or its CRD is not served). */
  getIpamClaim(namespace: string, name: string): Promise<IpamClaimObject | undefined>;
  /** Replaces the IPAMClaim's status (metadata.resourceVersion set: KubeConflictError if it moved). */
  updateIpamClaimStatus(claim: IpamClaimObject): Promise<IpamClaimObject>;
  getEndpoint(namespace: string, name: string): Promise<EndpointObject | undefined>;
  /** Creates the endpoint in its namespace; KubeConflictError when the name is taken. */
  createEndpoint(endpoint: EndpointObject): Promise<EndpointObject>;
  /** Replaces the endpoint (metadata.resourceVersion must be set); KubeConflictError on a stale version or when it was deleted meanwhile. */
  updateEndpoint(endpoint: EndpointObject): Promise<EndpointObject>;
  /** Deletes the endpoint if it still has this uid (and, when given, this resourceVersion). */
  deleteEndpoint(namespace: string, name: string, uid: string, resourceVersion?: string): Promise<boolean>;
}
