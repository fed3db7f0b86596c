/**
 * The one error the node database throws for a database it cannot use as
 * berth needs it: it cannot be opened, it stays outside WAL, or (STATUS) it
 * or its directory is not usable. store/ knows nothing of plugin/, so the
 * brand is stamped here under the same registry key that
 * plugin/support/errors.ts's `isKind` reads (`Symbol.for`): the plugin
 * recognises it as it recognises its own errors.
 */

/** Why the database cannot be used. */
export type StoreProblem = "cannot-open" | "journal-mode" | "not-ready";

export class StoreError extends Error {
  static readonly brand = "StoreError";

  /** Recognised by its brand, as `isKind` does: a second copy of this module (a lazy entry's bundle) throws its own class. */
  static is(err: unknown): err is StoreError {
    return typeof err === "object" && err !== null && (err as Record<symbol, unknown>)[Symbol.for("berth.error-kind")] === StoreError.brand;
  }

  constructor(
    readonly problem: StoreProblem,
    /** The database file. */
    readonly path: string,
    /** Its directory (a network's `ipam.dataDir`). */
    readonly dataDir: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    Object.defineProperty(this, Symbol.for("berth.error-kind"), { value: StoreError.brand, enumerable: false });
    this.name = StoreError.brand;
  }
}
