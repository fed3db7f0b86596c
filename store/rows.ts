/** The rows of the node database's tables, as berth reads and writes them. */

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

/** The current time as SQLite writes it into the tables (UTC, milliseconds). */
export const SQL_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";
