/**
 * What the controller needs of the API server beyond what the plugin does.
 * Types only, and only from plugin/kube: the controller depends on this
 * layer, never the other way round.
 */
import type { ClaimObject, EndpointObject, KubeApi, ObjectMeta, PodObject, PoolObject, StatefulSetObject } from "./kube-api.ts";

/** A coordination.k8s.io/v1 Lease; times are RFC 3339 strings (written with six fractional digits). */
export interface LeaseObject {
  metadata: ObjectMeta;
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

/** The collections the controller watches. */
export type WatchKind = "pods" | "statefulsets" | "claims" | "endpoints" | "pools";

/** The API server as the controller uses it: the plugin's KubeApi plus cluster-wide lists, leases, events and watches. */
export interface ControllerApi extends KubeApi {
  /** Every claim, consistent read; so for the other `listAll*`. */
  listAllClaims(): Promise<ClaimObject[]>;
  listAllPods(): Promise<PodObject[]>;
  listAllStatefulSets(): Promise<StatefulSetObject[]>;
  listAllEndpoints(): Promise<EndpointObject[]>;
  /** Deletes the claim only if it still has this uid and resourceVersion (unchanged since it was judged). */
  deleteClaimIfUnchanged(claim: ClaimObject): Promise<boolean>;
  /** Sets a pool's finalizers, on condition it is still at `resourceVersion`. */
  setPoolFinalizers(pool: PoolObject, finalizers: string[]): Promise<void>;
  getLease(namespace: string, name: string): Promise<LeaseObject | undefined>;
  /** Creates the lease; KubeConflictError when another replica created it first. */
  createLease(lease: LeaseObject): Promise<LeaseObject>;
  /** Replaces the lease (optimistic: KubeConflictError if it moved). */
  updateLease(lease: LeaseObject): Promise<LeaseObject>;
  /** Records a Kubernetes Event on an object; failures are the caller's to ignore. */
  recordEvent(target: { kind: string; apiVersion: string; namespace: string; name: string; uid?: string }, type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
  /** Watches one kind; calls `onEvent` per change; resolves when the watch ends (the caller restarts it). */
  watch(kind: WatchKind, onEvent: (type: string, obj: { metadata: ObjectMeta }) => void): Promise<void>;
}
