/**
 * The node's lease database, over any SqlDriver: its transactions, the
 * leases (address ↔ attachment) both modes keep, and a face per mode over the
 * same database, `bindings` (local mode, local-bindings.ts) and `hints`
 * (cluster mode, claim-hints.ts).
 */
import { dirname } from "node:path";
import { BUSY_TIMEOUT_MS, type BusyWait, retryBusy } from "./busy-wait.ts";
import { ClaimHints } from "./claim-hints.ts";
import type { SqlDriver } from "./driver.ts";
import { HolderPriority } from "./holder-priority.ts";
import { LocalBindings } from "./local-bindings.ts";
import { migrate } from "./migrations.ts";
import { type Lease, type NewLease, SQL_NOW } from "./rows.ts";
import { StoreError } from "./store-error.ts";

export { BUSY_TIMEOUT_MS, type BusyWait, isBusy, retryBusy } from "./busy-wait.ts";
export type { Binding, Lease, NewBinding, NewLease, PoolRecord, PoolRow } from "./rows.ts";

/**
 * Why a database that would not switch to WAL (SQLite answers with the mode
 * it kept: "memory" for an in-memory database, "delete" where the VFS has no
 * shared memory) is refused: readers (inspect, a concurrent ADD's local
 * reads) would block writers and be blocked by them, and the busy handling
 * and durability reasoning (cacheWrite) assume WAL.
 */
function journalModeError(path: string, mode: string): StoreError {
  return new StoreError(
    "journal-mode",
    path,
    dirname(path),
    `lease database ${path} is in journal mode "${mode}" and cannot be switched to WAL (berth needs WAL: is it on a filesystem without shared-memory support, or in memory?)`,
  );
}

/** The lease database. Open one per process; `immediate` serialises writers across processes. */
export class LeaseStore {
  /** Local mode: StatefulSet bindings and configured pools. */
  readonly bindings: LocalBindings;
  /** Cluster mode: the addresses last seen claimed. */
  readonly hints: ClaimHints;

  constructor(
    readonly db: SqlDriver,
    private readonly busyWait: BusyWait = BUSY_TIMEOUT_MS,
    private readonly priority = new HolderPriority(),
  ) {
    const write = <T>(fn: () => T) => this.write(fn);
    this.bindings = new LocalBindings(db, write);
    this.hints = new ClaimHints(db, write);
  }

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
      if (mode !== "wal") throw journalModeError(db.path, String(mode));
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

  addLease(l: NewLease): number {
    return this.write(() => {
      return this.db
        .prepare(
          `INSERT INTO leases (network, address, family, pool, container_id, ifname, pod_namespace, pod_name, pod_uid, created_at, state, prefix, gateway, routes)
           VALUES (:network, :address, :family, :pool, :container_id, :ifname, :pod_namespace, :pod_name, :pod_uid, ${SQL_NOW}, :state, :prefix, :gateway, :routes)`,
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

  /** Every lease of one pool in one network, pending and active, oldest first. */
  leasesOfPool(network: string, pool: string): Lease[] {
    return this.db.prepare<Lease>("SELECT * FROM leases WHERE network = :network AND pool = :pool ORDER BY created_at").all({ network, pool });
  }

  /** Deletes a lease only while it is still in `state` (an ADD that activated a pending one meanwhile keeps it); returns whether it did. */
  deleteLeaseIn(id: number, state: Lease["state"]): boolean {
    return this.write(() => this.db.prepare("DELETE FROM leases WHERE id = :id AND state = :state").run({ id, state }).changes > 0);
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

  /** Leases held by a pod (by name), in any network unless one is given. */
  leasesOfPod(namespace: string, pod: string, network?: string): Lease[] {
    const where = `pod_namespace = :ns AND pod_name = :pod${network === undefined ? "" : " AND network = :network"}`;
    return this.db.prepare<Lease>(`SELECT * FROM leases WHERE ${where}`).all({ ns: namespace, pod, network });
  }

  listLeases(network?: string): Lease[] {
    const where = network === undefined ? "" : "WHERE network = :network";
    return this.db.prepare<Lease>(`SELECT * FROM leases ${where} ORDER BY network, pool, family, address`).all({ network });
  }

  close(): void {
    this.db.close();
  }
}
