/**
 * STATUS's look at the node database: could an ADD use it now? Answered
 * without writing: a runtime asks every few seconds, and a write would cost
 * an fsync each time and queue behind (or hold up) the ADDs and DELs that
 * hold the write lock.
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import type { OpenDriver } from "./driver.ts";
import { LeaseStore } from "./lease-store.ts";
import type { LeaseDbPlace } from "./open-lease-db.ts";
import { StoreError } from "./store-error.ts";

/**
 * The database opened for reading (the caller closes it), or undefined on a
 * node that never allocated, whose data directory can be created. Throws
 * a StoreError "not-ready" naming the path otherwise (STATUS: code 50):
 * the database or its directory is not readable and writable, or the file
 * is not a berth database.
 */
export function leaseDbReady(place: LeaseDbPlace, openDriver: OpenDriver): LeaseStore | undefined {
  const fail = (what: string, err?: unknown): never => {
    throw new StoreError("not-ready", place.dbPath, place.dataDir, `lease database ${place.dbPath} ${what}`, { cause: err });
  };
  if (!existsSync(place.dbPath)) {
    creatable(place.dataDir, fail);
    return undefined;
  }
  try {
    accessSync(place.dbPath, constants.R_OK | constants.W_OK);
    accessSync(place.dataDir, constants.W_OK | constants.X_OK); // WAL and shared-memory files are created beside it
  } catch (err) {
    fail(`is not usable: ${(err as Error).message}`, err);
  }
  let store: LeaseStore | undefined;
  try {
    store = LeaseStore.open(openDriver(place.dbPath));
    store.db.prepare("SELECT count(*) AS n FROM leases").get(); // reads the schema and a table: a damaged file fails here
    return store;
  } catch (err) {
    store?.close();
    return fail(`is unreadable: ${(err as Error).message}`, err);
  }
}

/** Throws unless `dir` exists as a writable directory or its nearest existing ancestor is one (an ADD would create it). */
function creatable(dir: string, fail: (what: string, err?: unknown) => never): void {
  let at = dir;
  while (!existsSync(at)) {
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  const where = at === dir ? `its directory ${dir}` : `its directory ${dir} cannot be created: ${at}`;
  let ok = false;
  try {
    ok = statSync(at).isDirectory();
    if (ok) accessSync(at, constants.W_OK | constants.X_OK);
  } catch (err) {
    fail(`is absent and ${where} is not writable (${(err as Error).message})`, err);
  }
  if (!ok) fail(`is absent and ${where} is not a directory`);
}
