/**
 * The pools a network's own configuration names for each family: local
 * mode's whole choice, and the tail of cluster mode's (pool-choice.ts, which
 * reads the pods' and namespaces' annotations first).
 */
import type { IpamConfig } from "./config.ts";
import type { FamilyPools, Pool } from "./pool.ts";

/**
 * `default_ipv4_ippool` / `default_ipv6_ippool` when set, else every pool
 * marked `default: true`. A family with no candidate is not requested; config
 * validation guarantees at least one family has candidates.
 */
export function defaultPools(ipam: IpamConfig): FamilyPools[] {
  const out: FamilyPools[] = [];
  for (const family of [4, 6] as const) {
    const named = ipam.defaultPools[family];
    const pools = named.length
      ? named.map((n) => ipam.pools.find((p) => p.name === n)).filter((p): p is Pool => p !== undefined)
      : ipam.pools.filter((p) => p.family === family && p.default);
    if (pools.length) out.push({ family, pools });
  }
  return out;
}
