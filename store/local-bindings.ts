/**
 * Local mode's face of the node database: StatefulSet pods' bindings, the
 * pools as last configured (with the round-robin cursor), and what is taken.
 * Writes join the caller's transaction, if any.
 */
import type { SqlDriver } from "./driver.ts";
import { type Binding, type NewBinding, type PoolRecord, type PoolRow, SQL_NOW } from "./rows.ts";

export class LocalBindings {
  constructor(
    private readonly db: SqlDriver,
    private readonly write: <T>(fn: () => T) => T,
  ) {}

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

  get(network: string, namespace: string, pod: string, ifname: string, family: 4 | 6): Binding | undefined {
    return this.db
      .prepare<Binding>("SELECT * FROM bindings WHERE network = :network AND pod_namespace = :ns AND pod_name = :pod AND ifname = :ifname AND family = :family")
      .get({ network, ns: namespace, pod, ifname, family });
  }

  /** Creates or moves a pod's binding and marks it used now. */
  put(b: NewBinding): void {
    this.write(() => {
      this.db
        .prepare(
          `INSERT INTO bindings (network, pod_namespace, pod_name, ifname, family, address, pool, created_at, last_used_at)
           VALUES (:network, :pod_namespace, :pod_name, :ifname, :family, :address, :pool, ${SQL_NOW}, ${SQL_NOW})
           ON CONFLICT (network, pod_namespace, pod_name, ifname, family) DO UPDATE SET
             created_at = CASE WHEN address = excluded.address THEN created_at ELSE excluded.created_at END,
             address = excluded.address, pool = excluded.pool, last_used_at = excluded.last_used_at`,
        )
        .run(b);
    });
  }

  delete(b: Pick<Binding, "network" | "pod_namespace" | "pod_name" | "ifname" | "family">): void {
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

  /** Records the pools of a configuration (changed rows only) and forgets pools it no longer names. */
  syncPools(network: string, pools: PoolRecord[]): void {
    this.write(() => {
      const upsert = this.db.prepare(
        `INSERT INTO pools (network, name, family, subnet, ranges, total, gateway, is_default, disabled, updated_at)
         VALUES (:network, :name, :family, :subnet, :ranges, :total, :gateway, :is_default, :disabled, ${SQL_NOW})
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

  cursor(network: string, pool: string): string | undefined {
    return (
      this.db.prepare<{ last_address: string | null }>("SELECT last_address FROM pools WHERE network = :network AND name = :pool").get({ network, pool })
        ?.last_address ?? undefined
    );
  }

  setCursor(network: string, pool: string, address: string): void {
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

  list(network?: string): Binding[] {
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
}
