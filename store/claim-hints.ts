/**
 * Cluster mode's face of the node database: the addresses this node last saw
 * claimed, per pool. Only a hint for where to try first; the API server's
 * atomic create decides. Writes join the caller's transaction, if any.
 */
import type { SqlDriver } from "./driver.ts";
import { SQL_NOW } from "./rows.ts";

export class ClaimHints {
  constructor(
    private readonly db: SqlDriver,
    private readonly write: <T>(fn: () => T) => T,
  ) {}

  /**
   * Cluster mode: whether this node should not try `address` of `pool`: the
   * hints say it was claimed, or a lease on this node (pending or active)
   * holds it in `network`. The lease decides before the hints learn it, so
   * that a second ADD on this node does not try an address a first one is
   * taking while its hint is only written at the end (cluster-add.ts). A
   * pending lease of an ADD that is over stays until its attachment's DEL or
   * GC, or until an ADD that needs the address drops it
   * (plugin/cluster/stale-leases.ts).
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

  /** Whether the hints say `address` of `pool` is claimed (leases aside). */
  has(pool: string, address: string): boolean {
    return this.db.prepare("SELECT 1 FROM claim_hints WHERE pool = :pool AND address = :address").get({ pool, address }) !== undefined;
  }

  /** When the hints of a pool were last refreshed from a full LIST (ms since epoch), if ever. */
  listedAt(pool: string): number | undefined {
    const row = this.db.prepare<{ listed_at: string }>("SELECT listed_at FROM claim_hint_pools WHERE pool = :pool").get({ pool });
    return row ? Date.parse(row.listed_at) : undefined;
  }

  /** Replaces a pool's hints with the addresses a full LIST returned. */
  replace(pool: string, addresses: string[]): void {
    this.write(() => {
      this.db.prepare("DELETE FROM claim_hints WHERE pool = :pool").run({ pool });
      const add = this.db.prepare("INSERT OR IGNORE INTO claim_hints (pool, address) VALUES (:pool, :address)");
      for (const address of addresses) add.run({ pool, address });
      this.db
        .prepare(`INSERT INTO claim_hint_pools (pool, listed_at) VALUES (:pool, ${SQL_NOW}) ON CONFLICT (pool) DO UPDATE SET listed_at = excluded.listed_at`)
        .run({ pool });
    });
  }

  /** Records one address as claimed (true) or free (false) in the hints. */
  set(pool: string, address: string, taken: boolean): void {
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
}
