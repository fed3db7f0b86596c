/**
 * What the controller needs of the API server beyond what the plugin does.
 * Types only, and only from plugin/kube: the controller depends on this
 * layer, never the other way round.
 */
import type { ClaimObject, EndpointObject, IpamClaimObject, KubeApi, ObjectMeta, PodObject, PoolObject, PoolStatus, StatefulSetObject } from "./kube-api.ts";

/** A coordination.k8s.io/v1 Lease; times are RFC 3339 strings (written with six fractional digits). */
export interface LeaseObject {
  metadata: ObjectMeta;
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

/** A Node, as far as the controller looks at it: its conditions (Ready) and what runs it (kubelet and runtime versions). */
export interface NodeObject {
  metadata: ObjectMeta;
  status?: {
    conditions?: { type: string; status: string; lastHeartbeatTime?: string; reason?: string }[];
    nodeInfo?: { kubeletVersion?: string; containerRuntimeVersion?: string };
  };
}

/** The collections the controller watches. */
export type WatchKind = "pods" | "statefulsets" | "claims" | "endpoints" | "pools" | "nodes" | "ipamclaims";

/** One page of a paged LIST, handed over as it arrives. */
export type OnPage<T> = (items: T[]) => void;

/**
 * The API server as the controller uses it: the plugin's KubeApi plus
 * cluster-wide paged lists, leases, events, watches and the server's clock.
 */
export interface ControllerApi extends KubeApi {
  /** The API server's clock now (ms since the epoch), estimated from its answers (kube-request.ts ServerClock). */
  serverNow(): number;
  /**
   * Every claim, in pages of `pageSize` (one consistent snapshot); so for the
   * other `listAll*`. Resolves with the number of requests.
   */
  listAllClaims(pageSize: number, onPage: OnPage<ClaimObject>): Promise<number>;
  listAllPods(pageSize: number, onPage: OnPage<PodObject>): Promise<number>;
  listAllStatefulSets(pageSize: number, onPage: OnPage<StatefulSetObject>): Promise<number>;
  listAllEndpoints(pageSize: number, onPage: OnPage<EndpointObject>): Promise<number>;
  listAllNodes(pageSize: number, onPage: OnPage<NodeObject>): Promise<number>;
  /** Every IPAMClaim; KubeRequestError 404 when its CRD is not served. */
  listAllIpamClaims(pageSize: number, onPage: OnPage<IpamClaimObject>): Promise<number>;
  /** The pods of one namespace (an IPAMClaim-held claim is judged on the pods that name its IPAMClaim). */
  listPodsIn(namespace: string): Promise<PodObject[]>;
  /** The node with its status, or undefined when there is none. */
  getNode(name: string): Promise<NodeObject | undefined>;
  /** Deletes the claim only if it still has this uid and resourceVersion (unchanged since it was judged). */
  deleteClaimIfUnchanged(claim: ClaimObject): Promise<boolean>;
  /**
   * Merge-patches a pool's status subresource, on condition that the pool is
   * still at `resourceVersion` (KubeConflictError otherwise). Only the
   * controller writes pool status: counts are derived from its watch.
   */
  patchPoolStatus(name: string, resourceVersion: string, status: PoolStatus): Promise<void>;
  /** Sets a pool's finalizers, on condition it is still at `resourceVersion`. */
  setPoolFinalizers(pool: PoolObject, finalizers: string[]): Promise<void>;
  getLease(namespace: string, name: string): Promise<LeaseObject | undefined>;
  /** Creates the lease; KubeConflictError when another replica created it first. */
  createLease(lease: LeaseObject): Promise<LeaseObject>;
  /** Replaces the lease (optimistic: KubeConflictError if it moved). */
  updateLease(lease: LeaseObject): Promise<LeaseObject>;
  /** Records a Kubernetes Event on an object; failures are the caller's to ignore. */
  recordEvent(
    target: { kind: string; apiVersion: string; namespace: string; name: string; uid?: string },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void>;
  /**
   * Watches one kind; calls `onEvent` per change; resolves when the watch
   * ends (the caller restarts it) with the last resourceVersion seen, to go
   * on from, or undefined when the server said that version is too old (410
   * Gone: events were missed). From `resourceVersion` when given (no replay
   * of what exists), else from a replay of every object (ADDED each).
   */
  watch(kind: WatchKind, onEvent: (type: string, obj: { metadata: ObjectMeta }) => void, resourceVersion?: string): Promise<{ resourceVersion?: string }>;
  /** The collection's current resourceVersion (a one-object LIST), to watch from without a replay. */
  collectionVersion(kind: WatchKind): Promise<string | undefined>;
}
