/** Opens the node's lease database for a CNI command, creating its directory when needed. */
import { existsSync, mkdirSync } from "node:fs";
import type { IpamConfig } from "../ipam/config.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import type { OpenDriver } from "../../store/driver.ts";
import { type BusyWait, LeaseStore, isBusy, isJournalModeError } from "../../store/lease-store.ts";
import type { Pool } from "../ipam/pool.ts";
import type { PoolRecord } from "../../store/lease-store.ts";
import { formatAddress } from "../ipam/ip.ts";

/**
 * Opens (and migrates) the database. With `mustExist`, returns undefined when
 * there is none yet: DEL and GC of a node that never allocated have nothing to do.
 * `busyWait` bounds every wait for the write lock (default: BUSY_TIMEOUT_MS each).
 */
export function openStore(ipam: IpamConfig, openDriver: OpenDriver, mustExist = false, busyWait?: BusyWait): LeaseStore | undefined {
  if (mustExist && !existsSync(ipam.dbPath)) return undefined;
  try {
    mkdirSync(ipam.dataDir, { recursive: true, mode: 0o700 });
    return LeaseStore.open(openDriver(ipam.dbPath), busyWait);
  } catch (err) {
    if (isBusy(err)) throw err; // still locked after the busy timeout: CNI code 11, try again
    if (isJournalModeError(err)) throw new IpamError("io-failure", err.message, `ipam.dataDir ${ipam.dataDir}`, { cause: err });
    throw new IpamError("io-failure", `cannot open lease database ${ipam.dbPath}: ${(err as Error).message}`, "check ipam.dataDir and its permissions", {
      cause: err,
    });
  }
}

/** The row berth keeps of a configured pool, for `berth inspect pools`. */
export function poolRecord(network: string, p: Pool): PoolRecord {
  return {
    network,
    name: p.name,
    family: p.family,
    subnet: p.subnet.cidr,
    ranges: p.ranges
      .map((r) => (r.start === r.end ? formatAddress(r.family, r.start) : `${formatAddress(r.family, r.start)}-${formatAddress(r.family, r.end)}`))
      .join(","),
    total: Number(p.total),
    gateway: p.gateway ?? null,
    is_default: p.default,
    disabled: p.disable,
  };
}
