/**
 * The benches' IP arithmetic, on the product's own (plugin/ipam/ip.ts): which
 * addresses a pool or a peer's range may give, and the n-th address of a
 * subnet, for building pools of an exact size and the claims that fill them.
 */
import { formatAddress, type IpRange, inRanges, parseAddress, parseRange, parseSubnet, type Subnet, usableRange } from "../../plugin/ipam/ip.ts";

/** A subnet ("10.200.0.0/16") parsed, or an error naming it. */
export function subnetOf(cidr: string): Subnet {
  const p = parseSubnet(cidr);
  if (!p.ok) throw new Error(`${cidr}: ${p.reason}`);
  return p.subnet;
}

/** A function giving the address `i` past the subnet's network address: nthOf("10.202.0.0/16")(257) is "10.202.1.1". */
export function nthOf(cidr: string): (i: number) => string {
  const s = subnetOf(cidr);
  return (i) => formatAddress(s.family, s.start + BigInt(i));
}

/** What a pool may give: its `ips` ("a" or "a-b"), or without them its subnet less the network and broadcast addresses. */
export function poolRanges(p: { subnet: string; ips?: string[] }): IpRange[] {
  if (!p.ips) return [usableRange(subnetOf(p.subnet))];
  return p.ips.map((text) => {
    const r = parseRange(text);
    if (typeof r === "string") throw new Error(`${text}: ${r}`);
    return r;
  });
}

/** Whether the textual address lies in one of the ranges (false for anything that is not an address). */
export function inRangesText(address: string, ranges: readonly IpRange[]): boolean {
  const a = parseAddress(address);
  return a !== undefined && inRanges(a.value, ranges);
}
