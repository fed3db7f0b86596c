/** Opening a node's lease database for a command, creating its directory when needed. */
import { existsSync, mkdirSync } from "node:fs";
import type { BusyWait } from "./busy-wait.ts";
import { isBusy } from "./busy-wait.ts";
import type { OpenDriver } from "./driver.ts";
import { LeaseStore } from "./lease-store.ts";
import { StoreError } from "./store-error.ts";

/** Where a network keeps its database: the file and its directory (a network's `ipam` block has both). */
export interface LeaseDbPlace {
  dbPath: string;
  dataDir: string;
}

export interface OpenOptions {
  /** Undefined instead of a new database when there is none yet: DEL and GC of a node that never allocated have nothing to do. */
  mustExist?: boolean;
  /** Bounds every wait for the write lock (default: BUSY_TIMEOUT_MS each). */
  busyWait?: BusyWait;
}

/**
 * Opens (and migrates) the database. A lock still held past the busy wait is
 * SQLite's busy error, as is (the runtime tries again); anything else that
 * stops it is a StoreError naming the file.
 */
export function openLeaseDb(place: LeaseDbPlace, openDriver: OpenDriver, opts: OpenOptions = {}): LeaseStore | undefined {
  if (opts.mustExist && !existsSync(place.dbPath)) return undefined;
  try {
    mkdirSync(place.dataDir, { recursive: true, mode: 0o700 });
    return LeaseStore.open(openDriver(place.dbPath), opts.busyWait);
  } catch (err) {
    if (isBusy(err)) throw err;
    // The driver may name the file otherwise (a URI, ":memory:"): the error names the network's place.
    if (StoreError.is(err)) throw new StoreError(err.problem, place.dbPath, place.dataDir, err.message, { cause: err });
    throw new StoreError("cannot-open", place.dbPath, place.dataDir, `cannot open lease database ${place.dbPath}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
