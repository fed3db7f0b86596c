/**
 * The one error the modes throw for a failure the runtime must hear about.
 * `kind` says what went wrong; the CNI boundary alone maps it to a code.
 */
import { brand } from "../support/errors.ts";

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
  | "refused"
  /** Configuration that parsed but cannot be used (an unreadable kubeconfig, a bad prevResult address). */
  | "invalid-config"
  /** The runtime's CNI_* variables lack what this mode needs. */
  | "invalid-env"
  /** A local file (the lease database) could not be opened. */
  | "io-failure"
  /** STATUS: an ADD could not be served now. */
  | "not-available"
  /** Transient: run the command again. */
  | "try-again";

export class IpamError extends Error {
  static readonly brand = "IpamError";
  constructor(
    readonly kind: IpamErrorKind,
    message: string,
    readonly details = "",
    options?: { cause?: unknown },
  ) {
    super(message, options);
    brand(this, IpamError.brand);
  }
}
