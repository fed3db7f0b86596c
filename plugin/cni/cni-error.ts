/**
 * The error berth reports at the CNI boundary. Everything inside throws
 * ordinary errors (with `cause`); to-cni-error.ts turns them into a CniError.
 */
import { brand } from "../support/errors.ts";

export class CniError extends Error {
  static readonly brand = "CniError";
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly details: string = "",
    options?: { cause?: unknown },
  ) {
    super(msg, options);
    brand(this, CniError.brand);
  }

  /** The spec's error object, for stdout. */
  toJSON(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.msg };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Well-known codes from the CNI spec, and berth's own (>= 100). */
export const Code = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  /** Every candidate pool of a family is full. */
  PoolExhausted: 100,
  /** No pool may serve this request (all named pools disabled or absent). */
  NoCandidatePool: 101,
  /** A bound address is held by a different pod. */
  AddressConflict: 102,
  /** CHECK: the lease the runtime believes in is gone. */
  LeaseMissing: 103,
  /** The lease database could not be used. */
  StoreFailure: 104,
  /** A bug: something berth did not expect. */
  Internal: 105,
  /** Cluster mode: pod, pool or StatefulSet not found. */
  NotFound: 106,
  /** Cluster mode: a pool annotation cannot be parsed. */
  BadAnnotation: 107,
  /** Cluster mode: a SpiderIPPool is invalid. */
  BadPool: 108,
  /** Cluster mode: the API server refused a request (RBAC, validation). */
  Refused: 109,
} as const;
