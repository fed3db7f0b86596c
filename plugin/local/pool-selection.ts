/** Which pools a local-mode ADD may use, per family, in order. */
import type { IpamConfig } from "../ipam/config.ts";
import type { Family } from "../ipam/ip.ts";
import type { Pool } from "../ipam/pool.ts";

/**
 * `default_ipv4_ippool` / `default_ipv6_ippool` when set, else every pool
 * marked `default: true`. A family with no candidate is not requested; config
 * validation guarantees at least one family has candidates.
 */
export function selectPools(ipam: IpamConfig): { family: Family; pools: Pool[] }[] {
  const out: { family: Family; pools: Pool[] }[] = [];
  for (const family of [4, 6] as const) {
    const named = ipam.defaultPools[family];
    const pools = named.length
      ? named.map((n) => ipam.pools.find((p) => p.name === n)).filter((p): p is Pool => p !== undefined)
      : ipam.pools.filter((p) => p.family === family && p.default);
    if (pools.length) out.push({ family, pools });
  }
  return out;
}
