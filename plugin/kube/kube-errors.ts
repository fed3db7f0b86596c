/** How API server failures reach the rest of berth: three kinds, recognised with `isKind`. */
import { brand, isKind } from "../support/errors.ts";

/** The API server could not be reached or did not answer in time (CNI code 11). */
export class KubeUnreachableError extends Error {
  static readonly brand = "KubeUnreachableError";
  /** The request was not sent, or not answered, within what was left of its command's budget (kube-request.ts TimeLeft). */
  readonly outOfTime: boolean;
  constructor(
    readonly server: string,
    message: string,
    options?: { cause?: unknown; outOfTime?: boolean },
  ) {
    super(message, options);
    this.outOfTime = options?.outOfTime ?? false;
    brand(this, KubeUnreachableError.brand);
  }
}

/**
 * A write lost a race: AlreadyExists, a stale resourceVersion, a failed
 * precondition or JSON-patch test, or a replace or patch of an object that
 * was deleted after it was read (404 on PUT/PATCH).
 */
export class KubeConflictError extends Error {
  static readonly brand = "KubeConflictError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    brand(this, KubeConflictError.brand);
  }
}

/** Any other refusal (403 Forbidden, 422 Invalid, ...), with the server's reason. */
export class KubeRequestError extends Error {
  static readonly brand = "KubeRequestError";
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    brand(this, KubeRequestError.brand);
  }
}

/** Whether `err` is the API server's answer or its absence (any of the three kinds above), not a failure of berth's own. */
export function isApiFailure(err: unknown): boolean {
  return isKind(err, KubeUnreachableError) || isKind(err, KubeConflictError) || isKind(err, KubeRequestError);
}
