/** What the controller needs of the API server beyond what the plugin does. */
import type { ClaimObject, EndpointObject, KubeApi, ObjectMeta, PodObject, PoolObject, StatefulSetObject } from "./kube-api.ts";

export interface LeaseObject {
  metadata: ObjectMeta;
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export type WatchKind = "pods" | "statefulsets" | "claims" | "endpoints" | "pools";

export interface ControllerApi extends KubeApi {
  listAllClaims(): Promise<ClaimObject[]>;
  listAllPods(): Promise<PodObject[]>;
  listAllStatefulSets(): Promise<StatefulSetObject[]>;
  listAllEndpoints(): Promise<EndpointObject[]>;
  /** Deletes the claim only if it still has this uid and resourceVersion (unchanged since it was judged). */
  deleteClaimIfUnchanged(claim: ClaimObject): Promise<boolean>;
  /** Sets a pool's finalizers, on condition it is still at `resourceVersion`. */
  setPoolFinalizers(pool: PoolObject, finalizers: string[]): Promise<void>;
  getLease(namespace: string, name: string): Promise<LeaseObject | undefined>;
  createLease(lease: LeaseObject): Promise<LeaseObject>;
  /** Replaces the lease (optimistic: KubeConflictError if it moved). */
  updateLease(lease: LeaseObject): Promise<LeaseObject>;
  /** Records a Kubernetes Event on an object; failures are the caller's to ignore. */
  recordEvent(target: { kind: string; apiVersion: string; namespace: string; name: string; uid?: string }, type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
  /** Watches one kind; calls `onEvent` per change; resolves when the watch ends (the caller restarts it). */
  watch(kind: WatchKind, onEvent: (type: string, obj: { metadata: ObjectMeta }) => void): Promise<void>;
}
