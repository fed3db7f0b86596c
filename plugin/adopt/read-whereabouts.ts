/**
 * Whereabouts v0.6.x records: each IPPool's `spec.allocations` (an offset
 * from `spec.range`'s network address to `{id: container ID, podref:
 * "ns/name"}`) and each OverlappingRangeIPReservation (named after its
 * address, with `containerid` and `podref`). v0.6.2 records no interface
 * and no pod UID.
 */
import { addressFamily, formatAddress, normalizeAddress, parseAddress, parseSubnet, type Subnet } from "../ipam/ip.ts";
import type { AdoptApi } from "../kube/adopt-client.ts";
import type { SourceRead, SourceRecord } from "./source-record.ts";

export async function readWhereabouts(api: AdoptApi): Promise<SourceRead> {
  const records: SourceRecord[] = [];
  const ranges: SourceRead["ranges"] = [];
  const subnets: Subnet[] = [];
  for (const pool of await api.listWhereaboutsPools()) {
    const from = `IPPool ${pool.metadata.namespace}/${pool.metadata.name}`;
    const parsed = parseSubnet(networkOf(pool.spec?.range ?? ""));
    if (!parsed.ok) throw new Error(`${from}: spec.range ${JSON.stringify(pool.spec?.range)} is not a CIDR (${parsed.reason})`);
    const { subnet } = parsed;
    ranges.push({ range: subnet.cidr, from });
    subnets.push(subnet);
    for (const [offset, a] of Object.entries(pool.spec.allocations ?? {})) {
      if (!/^\d+$/.test(offset)) throw new Error(`${from}: allocation key ${JSON.stringify(offset)} is not an offset`);
      const value = subnet.start + BigInt(offset);
      if (value > subnet.end) throw new Error(`${from}: allocation offset ${offset} lies outside ${subnet.cidr}`);
      const address = formatAddress(subnet.family, value);
      records.push({ address, family: subnet.family, ...podRef(a.podref, `${from} offset ${offset}`), containerId: a.id, from });
    }
  }
  for (const r of await api.listOverlappingReservations()) {
    const address = reservationAddress(r.metadata.name, subnets);
    const from = `OverlappingRangeIPReservation ${r.metadata.namespace}/${r.metadata.name}`;
    if (!address) throw new Error(`${from}: its name is not an address`);
    records.push({ address, family: addressFamily(address)!, ...podRef(r.spec?.podref, from), containerId: r.spec?.containerid, from });
  }
  return { records, reserved: [], ranges };
}

/** "ns/name" as namespace and name. */
function podRef(ref: string | undefined, from: string): { namespace: string; name: string } {
  const m = /^([^/]+)\/([^/]+)$/.exec(ref ?? "");
  if (!m) throw new Error(`${from}: podref ${JSON.stringify(ref)} is not "namespace/name"`);
  return { namespace: m[1], name: m[2] };
}

/**
 * The address a reservation is named after: Go's text of the address, IPv6
 * with ":" written "-" (and a "0" after a trailing "-"), prefixed with
 * "<network>-" for a named network. A network name may itself end like an
 * IPv6 address ("net-a-fd00-..."), so of the suffixes that read back as
 * written, the longest inside a range Whereabouts allocates from wins.
 */
function reservationAddress(name: string, ranges: Subnet[]): string | undefined {
  const found: string[] = [];
  for (let at = 0; at >= 0 && at < name.length; at = name.indexOf("-", at) + 1 || -1) {
    const rest = name.slice(at);
    const v4 = normalizeAddress(rest);
    if (v4 === rest) found.push(v4);
    const v6 = normalizeAddress(rest.replace(/-/g, ":"));
    if (v6?.includes(":") && `${v6.replace(/:/g, "-")}${v6.endsWith(":") ? "0" : ""}` === rest) found.push(v6);
  }
  const inRange = (a: string) => {
    const p = parseAddress(a)!;
    return ranges.some((r) => r.family === p.family && p.value >= r.start && p.value <= r.end);
  };
  return found.find(inRange) ?? found[0];
}

/** "10.6.195.225/28" as "10.6.195.224/28": Whereabouts accepts a range with host bits set and counts offsets from its network. */
function networkOf(range: string): string {
  const [addr, prefix] = range.split("/");
  const a = parseAddress(addr ?? "");
  const bits = a?.family === 6 ? 128n : 32n;
  if (!a || !/^\d+$/.test(prefix ?? "") || BigInt(prefix) > bits) return range;
  const host = (1n << (bits - BigInt(prefix))) - 1n;
  return `${formatAddress(a.family, a.value & ~host)}/${prefix}`;
}
