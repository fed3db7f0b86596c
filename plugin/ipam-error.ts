/** Domain errors of allocation; the command glue maps `kind` to a CNI error code. */
export type IpamErrorKind =
  | "exhausted"
  | "no-pool"
  | "conflict"
  | "lease-missing"
  /** Cluster mode: the pod, a pool or a StatefulSet does not exist. */
  | "not-found"
  /** Cluster mode: a pool annotation is not valid JSON of the right shape. */
  | "bad-annotation"
  /** Cluster mode: a SpiderIPPool's spec is invalid. */
  | "bad-pool"
  /** Cluster mode: the API server refused a request (e.g. RBAC). */
  | "refused";

export class IpamError extends Error {
  constructor(
    readonly kind: IpamErrorKind,
    message: string,
    readonly details = "",
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "IpamError";
  }
}
