/**
 * How berth recognises its own errors. The compiled binary bundles the main
 * entry and the cluster and controller entries separately, so one class can
 * exist twice and `instanceof` fails across them. Each error class is branded
 * with a name under a registry symbol (`Symbol.for`, shared by every copy),
 * and `isKind` checks the brand: one way, everywhere.
 */

const BRAND = Symbol.for("berth.error-kind");

/** An error class that carries a brand: `static readonly brand`. */
export interface ErrorKind<E extends Error> {
  readonly brand: string;
  prototype: E;
}

/** Stamps `err` with its class's brand; call in the constructor. */
export function brand(err: Error, kind: string): void {
  Object.defineProperty(err, BRAND, { value: kind, enumerable: false });
  err.name = kind;
}

/** Whether `err` is an instance of `Kind`, from any copy of its module. */
export function isKind<E extends Error>(err: unknown, Kind: ErrorKind<E>): err is E {
  return typeof err === "object" && err !== null && (err as Record<symbol, unknown>)[BRAND] === Kind.brand;
}
