/** A configured pool as the node database keeps it (local mode), for `berth inspect pools`. */

import type { PoolRecord } from "../../store/lease-store.ts";
import { formatAddress } from "../ipam/ip.ts";
import type { Pool } from "../ipam/pool.ts";

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
