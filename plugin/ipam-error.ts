/** Domain errors of allocation; the command glue maps `kind` to a CNI error code. */
export type IpamErrorKind = "exhausted" | "no-pool" | "conflict" | "lease-missing";

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
