/**
 * The node-local lease database: leases (address ↔ attachment), bindings
 * (StatefulSet pod ↔ address) and pools, over any SqlDriver.
 */
import type { SqlDriver } from "./driver.ts";
import { HolderPriority } from "./holder-priority.ts";
import { migrate } from "./migrations.ts";

export interface Lease {
  id: number;
  network: string;
  address: string;
  family: 4 | 6;
  pool: string;
  container_id: string;
  ifname: string;
  pod_namespace: string | null;
  pod_name: string | null;
  pod_uid: string | null;
  created_at: string;
  state: "pending" | "active";
  prefix: number | null;
  gateway: string | null;
  /** JSON list of {dst, gw}. */
  routes: string | null;
}

export type NewLease = Omit<Lease, "id" | "created_at" | "state" | "prefix" | "gateway" | "routes"> &
  Partial<Pick<Lease, "state" | "prefix" | "gateway" | "routes">>;

export interface Binding {
  network: string;
  pod_namespace: string;
  pod_name: string;
  ifname: string;
  family: 4 | 6;
  address: string;
  pool: string;
  created_at: string;
  last_used_at: string;
}

export type NewBinding = Omit<Binding, "created_at" | "last_used_at">;

export interface PoolRecord {
  network: string;
  name: string;
  family: 4 | 6;
  subnet: string;
  ranges: string;
  total: number;
  gateway: string | null;
  is_default: boolean;
  disabled: boolean;
}

export interface PoolRow extends Omit<PoolRecord, "is_default" | "disabled"> {
  is_default: number;
  disabled: number;
  last_address: string | null;
  updated_at: string;
  /** Addresses leased or reserved by a binding. */
  allocated: number;
}

const NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/** How long a writer waits for the database lock before giving up (CNI code 11). */
export const BUSY_TIMEOUT_MS = 30_000;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Whether an error is SQLite saying another connection holds the lock. */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED" || (typeof code === "string" && code.startsWith("SQLITE_BUSY_"));
}

/**
 * Runs `fn`, retrying while SQLite reports the database busy, for up to
 * `timeoutMs`. SQLite's own busy handler sleeps in steps of up to 100 ms;
 * with a hundred plugin processes starting at once those sleeps, not the
 * work, made up the wall time (measured, BENCHMARKS.md). Short randomised
 * sleeps hand the lock on as soon as it is free.
 */
export function retryBusy<T>(fn: () => T, timeoutMs = BUSY_TIMEOUT_MS): T {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() >= deadline) throw err;
      Atomics.wait(sleeper, 0, 0, 0.2 + Math.random() * Math.min(5, 0.5 + attempt * 0.25));
    }
  }
}

/**
 * The database would not switch to WAL (SQLite answers with the mode it kept,
 * e.g. "memory" for an in-memory database, "delete" where the VFS has no
 * shared memory). berth does not run without WAL: readers (inspect, a
 * concurrent ADD's local reads) would block writers and be blocked by them,
 * and the busy handling and durability reasoning (lease-store.ts,
 * cacheWrite) assume WAL.
 */
export class JournalModeError extends Error {
  constructor(
    readonly path: string,
    readonly mode: string,
  ) {
    super(
      `lease database ${path} is in journal mode "${mode}" and cannot be switched to WAL (berth needs WAL: is it on a filesystem without shared-memory support, or in memory?)`,
    );
    this.name = "JournalModeError";
  }
}

/** Whether `err` is a JournalModeError (by name: the class may be bundled into more than one entry of the binary). */
export function isJournalModeError(err: unknown): err is JournalModeError {
  return (err as { name?: unknown })?.name === "JournalModeError";
}

/**
 * How long a writer may wait for the lock: a fixed time, or (a command with a
 * deadline, such as a cluster DEL) a function read at each wait, returning
 * what is left.
 */
export type BusyWait = number | (() => number);

/** The lease database. Open one per process; `immediate` serialises writers across processes. */
export class LeaseStore {
  constructor(
    readonly db: SqlDriver,
    private readonly busyWait: BusyWait = BUSY_TIMEOUT_MS,
    private readonly priority = new HolderPriority(),
  ) {}

  /** How long the next wait for the lock may take. */
  private busyTimeoutMs(): number {
    return typeof this.busyWait === "function" ? Math.max(0, this.busyWait()) : this.busyWait;
  }

  /** Prepares a writable database: WAL, durable commits, current schema; waits out other writers. */
  static open(db: SqlDriver, busyWait: BusyWait = BUSY_TIMEOUT_MS, priority?: HolderPriority): LeaseStore {
    const store = new LeaseStore(db, busyWait, priority);
    // Waiting is done by retryBusy; SQLite's own handler only covers what cannot be retried from here.
    db.exec("PRAGMA busy_timeout = 5");
    retryBusy(() => {
      // A fresh database needs the switch to WAL; one already in WAL answers without taking a lock.
      let mode = db.prepare<{ journal_mode: string }>("PRAGMA journal_mode").get()?.journal_mode;
      if (mode !== "wal") mode = db.prepare<{ journal_mode: string }>("PRAGMA journal_mode = WAL").get()?.journal_mode;
      if (mode !== "wal") throw new JournalModeError(db.path, String(mode));
      // A binding must survive a power cut: a StatefulSet pod must get its address back after a node reboot.
      db.exec("PRAGMA synchronous = FULL");
      migrate(db);
    }, store.busyTimeoutMs());
    return store;
  }

  /** Opens a database read-only for inspection (no migration, no writes). */
  static inspect(db: SqlDriver): LeaseStore {
    db.exec("PRAGMA busy_timeout = 5000");
    return new LeaseStore(db);
  }

  private inTransaction = false;

  /**
   * Runs `fn` under the database write lock (BEGIN IMMEDIATE), waiting for
   * other writers. `fn` may run more than once. From the moment the lock is
   * taken until the commit (fsync included) has released it, the process
   * runs at a raised priority (holder-priority.ts): under a burst the lock
   * changes hands instead of waiting for its holder to be scheduled.
   */
  immediate<T>(fn: () => T): T {
    if (this.inTransaction) return fn();
    return retryBusy(() => {
      this.inTransaction = true;
      let before: number | undefined;
      try {
        return this.db.immediate(() => {
          before ??= this.priority.raise();
          return fn();
        });
      } finally {
        this.priority.restore(before);
        this.inTransaction = false;
      }
    }, this.busyTimeoutMs());
  }

  /**
   * Runs `fn` in a write transaction whose commit is not fsynced: for
   * writes that are only a cache (claim hints), or whose loss on a power
   * cut is undone by the recovery that already exists. Inside `immediate`
   * it joins that transaction, which decides. `synchronous = NORMAL`, not
   * OFF: in WAL mode NORMAL still syncs at checkpoints, so the database
   * stays intact on a power cut and only the last commits may be lost;
   * OFF would let a checkpoint move unsynced pages into the database file
   * and then reuse the log, which can corrupt it. The WAL is appended in
   * order, so the next FULL commit (of any process) makes this one durable
   * too. The setting is per connection and cannot change inside a
   * transaction, hence around it; FULL again afterwards, whatever happens.
   */
  cacheWrite<T>(fn: () => T): T {
    if (this.inTransaction) return fn();
    this.db.exec("PRAGMA synchronous = NORMAL");
    try {
      return this.immediate(fn);
    } finally {
      this.db.exec("PRAGMA synchronous = FULL");
    }
  }

  /**
   * Every write method goes through here: inside `immediate` it joins that
   * transaction; alone it gets its own, with the same wait for other writers
   * (a bare statement would give up after SQLite's 5 ms busy timeout).
   */
  private write<T>(fn: () => T): T {
    return this.immediate(fn);
  }

  leasesOf(network: string, containerId: string, ifname: string): Lease[] {
    return this.db
      .prepare<Lease>("SELECT * FROM leases WHERE network = :network AND container_id = :cid AND ifname = :ifname ORDER BY family")
      .all({ network, cid: containerId, ifname });
  }

  leaseAt(network: string, address: string): Lease | undefined {
    return this.db.prepare<Lease>("SELECT * FROM leases WHERE network = :network AND address = :address").get({ network, address });
  }

  /** True when the address is leased or reserved by a binding. */
  isTaken(network: string, address: string): boolean {
    return (
      this.db
        .prepare(
          `SELECT 1 FROM leases WHERE network = :network AND address = :address
           UNION ALL SELECT 1 FROM bindings WHERE network = :network AND address = :address LIMIT 1`,
        )
        .get({ network, address }) !== undefined
    );
  }

  addLease(l: NewLease): number {
    return this.write(() => {
      return this.db
        .prepare(
          `INSERT INTO leases (network, address, family, pool, container_id, ifname, pod_namespace, pod_name, pod_uid, created_at, state, prefix, gateway, routes)
           VALUES (:network, :address, :family, :pool, :container_id, :ifname, :pod_namespace, :pod_name, :pod_uid, ${NOW}, :state, :prefix, :gateway, :routes)`,
        )
        .run({ state: "active", prefix: null, gateway: null, routes: null, ...l }).lastInsertRowid;
    });
  }

  /** Marks a pending lease active (its claim and endpoint exist). */
  activateLease(id: number): void {
    this.write(() => {
      this.db.prepare("UPDATE leases SET state = 'active' WHERE id = :id").run({ id });
    });
  }

  /**
   * Cluster mode: whether this node should not try `address` of `pool`: the
   * hints say it was claimed, or a lease on this node (pending or active)
   * holds it in `network`. The lease decides before the hints learn it, so
   * that a second ADD on this node does not try an address a first one is
   * taking while its hint is only written at the end (cluster-add.ts). A
   * pending lease of an ADD that is over stays until its attachment's DEL or
   * GC, or until an ADD that needs the address drops it
   * (plugin/cluster/stale-pending.ts).
   */
  hintedOrLeased(network: string, pool: string, address: string): boolean {
    return (
      this.db
        .prepare(
          `SELECT 1 FROM claim_hints WHERE pool = :pool AND address = :address
           UNION ALL SELECT 1 FROM leases WHERE network = :network AND address = :address LIMIT 1`,
        )
        .get({ network, pool, address }) !== undefined
    );
  }

  /** Pending leases of one pool in `network` (ADDs in flight or interrupted), oldest first. */
  pendingLeases(network: string, pool: string): Lease[] {
    return this.db
      .prepare<Lease>("SELECT * FROM leases WHERE network = :network AND pool = :pool AND state = 'pending' ORDER BY created_at")
      .all({ network, pool });
  }

  /** Deletes a lease only while it is still pending (an ADD that activated it meanwhile keeps it); returns whether it did. */
  deletePendingLease(id: number): boolean {
    return this.write(() => this.db.prepare("DELETE FROM leases WHERE id = :id AND state = 'pending'").run({ id }).changes > 0);
  }

  /** When the hints of a pool were last refreshed from a full LIST (ms since epoch), if ever. */
  hintsListedAt(pool: string): number | undefined {
    const row = this.db.prepare<{ listed_at: string }>("SELECT listed_at FROM claim_hint_pools WHERE pool = :pool").get({ pool });
    return row ? Date.parse(row.listed_at) : undefined;
  }

  /** Replaces a pool's hints with the addresses a full LIST returned. */
  replaceHints(pool: string, addresses: string[]): void {
    this.write(() => {
      this.db.prepare("DELETE FROM claim_hints WHERE pool = :pool").run({ pool });
      const add = this.db.prepare("INSERT OR IGNORE INTO claim_hints (pool, address) VALUES (:pool, :address)");
      for (const address of addresses) add.run({ pool, address });
      this.db
        .prepare(`INSERT INTO claim_hint_pools (pool, listed_at) VALUES (:pool, ${NOW}) ON CONFLICT (pool) DO UPDATE SET listed_at = excluded.listed_at`)
        .run({ pool });
    });
  }

  /** Records one address as claimed (true) or free (false) in the hints. */
  setHint(pool: string, address: string, taken: boolean): void {
    this.write(() => {
      this.db
        .prepare(
          taken
            ? "INSERT OR IGNORE INTO claim_hints (pool, address) VALUES (:pool, :address)"
            : "DELETE FROM claim_hints WHERE pool = :pool AND address = :address",
        )
        .run({ pool, address });
    });
  }

  deleteLease(id: number): void {
    this.write(() => {
      this.db.prepare("DELETE FROM leases WHERE id = :id").run({ id });
    });
  }

  /** Deletes the leases of one attachment and returns them. */
  releaseAttachment(network: string, containerId: string, ifname: string): Lease[] {
    return this.write(() => {
      const gone = this.leasesOf(network, containerId, ifname);
      if (gone.length) {
        this.db.prepare("DELETE FROM leases WHERE network = :network AND container_id = :cid AND ifname = :ifname").run({ network, cid: containerId, ifname });
      }
      return gone;
    });
  }

  /** Deletes every lease of `network` whose attachment `keep` rejects; returns them. */
  collectGarbage(network: string, keep: (containerId: string, ifname: string, createdAt: string) => boolean): Lease[] {
    return this.write(() => {
      const all = this.db.prepare<Lease>("SELECT * FROM leases WHERE network = :network").all({ network });
      const gone = all.filter((l) => !keep(l.container_id, l.ifname, l.created_at));
      for (const l of gone) this.deleteLease(l.id);
      return gone;
    });
  }

  bindingOf(network: string, namespace: string, pod: string, ifname: string, family: 4 | 6): Binding | undefined {
    return this.db
      .prepare<Binding>("SELECT * FROM bindings WHERE network = :network AND pod_namespace = :ns AND pod_name = :pod AND ifname = :ifname AND family = :family")
      .get({ network, ns: namespace, pod, ifname, family });
  }

  /** Creates or moves a pod's binding and marks it used now. */
  putBinding(b: NewBinding): void {
    this.write(() => {
      this.db
        .prepare(
          `INSERT INTO bindings (network, pod_namespace, pod_name, ifname, family, address, pool, created_at, last_used_at)
           VALUES (:network, :pod_namespace, :pod_name, :ifname, :family, :address, :pool, ${NOW}, ${NOW})
           ON CONFLICT (network, pod_namespace, pod_name, ifname, family) DO UPDATE SET
             created_at = CASE WHEN address = excluded.address THEN created_at ELSE excluded.created_at END,
             address = excluded.address, pool = excluded.pool, last_used_at = excluded.last_used_at`,
        )
        .run(b);
    });
  }

  deleteBinding(b: Pick<Binding, "network" | "pod_namespace" | "pod_name" | "ifname" | "family">): void {
    this.write(() => {
      this.db
        .prepare(
          "DELETE FROM bindings WHERE network = :network AND pod_namespace = :pod_namespace AND pod_name = :pod_name AND ifname = :ifname AND family = :family",
        )
        .run(b);
    });
  }

  /** Deletes every binding of a pod (all networks unless one is given) and returns them. */
  releasePod(namespace: string, pod: string, network?: string): Binding[] {
    return this.write(() => {
      const where = `pod_namespace = :ns AND pod_name = :pod${network === undefined ? "" : " AND network = :network"}`;
      const params = { ns: namespace, pod, network };
      const gone = this.db.prepare<Binding>(`SELECT * FROM bindings WHERE ${where}`).all(params);
      if (gone.length) this.db.prepare(`DELETE FROM bindings WHERE ${where}`).run(params);
      return gone;
    });
  }

  /** Leases held by a pod (by name), in any network unless one is given. */
  leasesOfPod(namespace: string, pod: string, network?: string): Lease[] {
    const where = `pod_namespace = :ns AND pod_name = :pod${network === undefined ? "" : " AND network = :network"}`;
    return this.db.prepare<Lease>(`SELECT * FROM leases WHERE ${where}`).all({ ns: namespace, pod, network });
  }

  /** Records the pools of a configuration (changed rows only) and forgets pools it no longer names. */
  syncPools(network: string, pools: PoolRecord[]): void {
    this.write(() => {
      const upsert = this.db.prepare(
        `INSERT INTO pools (network, name, family, subnet, ranges, total, gateway, is_default, disabled, updated_at)
         VALUES (:network, :name, :family, :subnet, :ranges, :total, :gateway, :is_default, :disabled, ${NOW})
         ON CONFLICT (network, name) DO UPDATE SET
           family = excluded.family, subnet = excluded.subnet, ranges = excluded.ranges, total = excluded.total,
           gateway = excluded.gateway, is_default = excluded.is_default, disabled = excluded.disabled, updated_at = excluded.updated_at
         WHERE family IS NOT excluded.family OR subnet IS NOT excluded.subnet OR ranges IS NOT excluded.ranges
            OR gateway IS NOT excluded.gateway OR is_default IS NOT excluded.is_default OR disabled IS NOT excluded.disabled`,
      );
      for (const p of pools) upsert.run({ ...p });
      const known = this.db.prepare<{ name: string }>("SELECT name FROM pools WHERE network = :network").all({ network });
      const names = new Set(pools.map((p) => p.name));
      for (const { name } of known) {
        if (!names.has(name)) this.db.prepare("DELETE FROM pools WHERE network = :network AND name = :name").run({ network, name });
      }
    });
  }

  poolCursor(network: string, pool: string): string | undefined {
    return (
      this.db.prepare<{ last_address: string | null }>("SELECT last_address FROM pools WHERE network = :network AND name = :pool").get({ network, pool })
        ?.last_address ?? undefined
    );
  }

  setPoolCursor(network: string, pool: string, address: string): void {
    this.write(() => {
      this.db.prepare("UPDATE pools SET last_address = :address WHERE network = :network AND name = :pool").run({ network, pool, address });
    });
  }

  /** Addresses of a pool that are leased or reserved. */
  poolUsage(network: string, pool: string): number {
    return (
      this.db
        .prepare<{ n: number }>(
          `SELECT count(*) AS n FROM (SELECT address FROM leases WHERE network = :network AND pool = :pool
                                       UNION SELECT address FROM bindings WHERE network = :network AND pool = :pool)`,
        )
        .get({ network, pool })?.n ?? 0
    );
  }

  listLeases(network?: string): Lease[] {
    const where = network === undefined ? "" : "WHERE network = :network";
    return this.db.prepare<Lease>(`SELECT * FROM leases ${where} ORDER BY network, pool, family, address`).all({ network });
  }

  listBindings(network?: string): Binding[] {
    const where = network === undefined ? "" : "WHERE network = :network";
    return this.db.prepare<Binding>(`SELECT * FROM bindings ${where} ORDER BY network, pod_namespace, pod_name, ifname, family`).all({ network });
  }

  listPools(network?: string): PoolRow[] {
    const where = network === undefined ? "" : "WHERE p.network = :network";
    return this.db
      .prepare<PoolRow>(
        `SELECT p.*, (SELECT count(*) FROM (SELECT address FROM leases l WHERE l.network = p.network AND l.pool = p.name
                                             UNION SELECT address FROM bindings b WHERE b.network = p.network AND b.pool = p.name)) AS allocated
           FROM pools p ${where} ORDER BY p.network, p.name`,
      )
      .all({ network });
  }

  close(): void {
    this.db.close();
  }
}
