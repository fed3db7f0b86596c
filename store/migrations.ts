/**
 * Schema migrations, tracked by SQLite's `user_version`. Entry i moves the
 * schema from version i to i+1. Names are chosen for an operator reading the
 * database with the sqlite3 CLI.
 */
import type { SqlDriver } from "./driver.ts";

export const MIGRATIONS: readonly string[] = [
  `
  -- Pools as last seen in the network configuration (local mode), with the round-robin cursor.
  CREATE TABLE pools (
    network       TEXT NOT NULL,
    name          TEXT NOT NULL,
    family        INTEGER NOT NULL CHECK (family IN (4, 6)),
    subnet        TEXT NOT NULL,
    ranges        TEXT NOT NULL,            -- allocatable: ips minus excludeIPs minus gateway
    total         INTEGER NOT NULL,
    gateway       TEXT,
    is_default    INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    last_address  TEXT,                     -- where the next search starts
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (network, name)
  ) WITHOUT ROWID;

  -- One row per address handed to a running attachment (container ID + interface).
  CREATE TABLE leases (
    id             INTEGER PRIMARY KEY,
    network        TEXT NOT NULL,
    address        TEXT NOT NULL,
    family         INTEGER NOT NULL CHECK (family IN (4, 6)),
    pool           TEXT NOT NULL,
    container_id   TEXT NOT NULL,
    ifname         TEXT NOT NULL,
    pod_namespace  TEXT,
    pod_name       TEXT,
    pod_uid        TEXT,
    created_at     TEXT NOT NULL,
    UNIQUE (network, address)
  );
  CREATE INDEX leases_by_attachment ON leases (network, container_id, ifname);
  CREATE INDEX leases_by_pool ON leases (network, pool);

  -- StatefulSet pods keep their address here between sandboxes.
  CREATE TABLE bindings (
    network        TEXT NOT NULL,
    pod_namespace  TEXT NOT NULL,
    pod_name       TEXT NOT NULL,
    ifname         TEXT NOT NULL,
    family         INTEGER NOT NULL CHECK (family IN (4, 6)),
    address        TEXT NOT NULL,
    pool           TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_used_at   TEXT NOT NULL,
    PRIMARY KEY (network, pod_namespace, pod_name, ifname, family),
    UNIQUE (network, address)
  ) WITHOUT ROWID;
  CREATE INDEX bindings_by_pool ON bindings (network, pool);

  -- Every address that is not free, and why.
  CREATE VIEW addresses AS
    SELECT l.network, l.address, l.pool, 'in-use' AS state, l.pod_namespace, l.pod_name,
           l.container_id, l.ifname, (b.address IS NOT NULL) AS sticky, l.created_at
      FROM leases l LEFT JOIN bindings b ON b.network = l.network AND b.address = l.address
    UNION ALL
    SELECT b.network, b.address, b.pool, 'reserved', b.pod_namespace, b.pod_name,
           NULL, b.ifname, 1, b.created_at
      FROM bindings b
     WHERE NOT EXISTS (SELECT 1 FROM leases l WHERE l.network = b.network AND l.address = b.address);
  `,
  `
  -- Cluster mode: a lease is 'pending' from just before its claim is created on
  -- the API server until the ADD completes, so a crash in between is found and
  -- undone by the next ADD, DEL or GC of that attachment. The result's prefix,
  -- gateway and routes are kept so a repeated ADD needs no API call.
  ALTER TABLE leases ADD COLUMN state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('pending', 'active'));
  ALTER TABLE leases ADD COLUMN prefix INTEGER;
  ALTER TABLE leases ADD COLUMN gateway TEXT;
  ALTER TABLE leases ADD COLUMN routes TEXT;       -- JSON list of {dst, gw}

  -- Cluster mode: addresses last seen claimed, per pool. Only a hint for where
  -- to try first; the API server's atomic create decides.
  CREATE TABLE claim_hints (
    pool     TEXT NOT NULL,
    address  TEXT NOT NULL,
    PRIMARY KEY (pool, address)
  ) WITHOUT ROWID;
  CREATE TABLE claim_hint_pools (
    pool       TEXT PRIMARY KEY,
    listed_at  TEXT NOT NULL               -- when the hints were last refreshed from a full LIST
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database to SCHEMA_VERSION; refuses one written by a newer berth. */
export function migrate(db: SqlDriver): void {
  const read = () => db.prepare<{ user_version: number }>("PRAGMA user_version").get()?.user_version ?? 0;
  if (read() === SCHEMA_VERSION) return;
  db.immediate(() => {
    const from = read(); // re-read under the write lock: another process may have migrated meanwhile
    if (from > SCHEMA_VERSION) {
      throw new Error(`database ${db.path} has schema version ${from}, newer than this berth's ${SCHEMA_VERSION}`);
    }
    for (let v = from; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  });
}
