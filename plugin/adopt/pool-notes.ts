/**
 * The `pools` part of adopt's plan: the SpiderIPPools it uses, the ones it
 * needs and lacks (a Whereabouts range has no pool yet), and the
 * SpiderReservedIP addresses that go into a pool's `excludeIPs`.
 */
import { formatAddress, inRanges, parseAddress, parseSubnet, usableRange } from "../ipam/ip.ts";
import type { Pool } from "../ipam/pool.ts";
import type { PoolObject } from "../kube/kube-api.ts";
import type { Planned } from "./plan.ts";
import type { Source, SourceRead } from "./source-record.ts";

export interface PoolNote {
  name: string;
  subnet: string;
  /** exists: adopt uses it; needed: create it before adopt can run. */
  status: "exists" | "needed";
  /** For a needed pool: the addresses it must cover (Whereabouts' range; narrow it as the NAD's range_start/range_end do). */
  ips?: string[];
  /** Reserved addresses adopt adds to the pool's excludeIPs (SpiderReservedIPs). */
  excludeIPs?: string[];
  /** Addresses of the plan in this pool (adopted or already berth's). */
  addresses: number;
  reason: string;
}

export function poolNotes(source: Source, read: SourceRead, plan: Planned[], pools: Pool[], objects: Map<string, PoolObject>): PoolNote[] {
  const notes: PoolNote[] = [];
  for (const p of pools) {
    const count = plan.filter((i) => i.pool === p.name && i.action !== "conflict").length;
    // Reserved addresses the pool covers and would still hand out.
    const reserved = read.reserved.filter((r) => {
      const a = parseAddress(r.address);
      return !!a && a.family === p.family && inRanges(a.value, p.ips) && inRanges(a.value, p.ranges);
    });
    if (count === 0 && reserved.length === 0) continue;
    const note: PoolNote = { name: p.name, subnet: p.subnet.cidr, status: "exists", addresses: count, reason: `SpiderIPPool ${p.name}` };
    if (reserved.length) {
      note.excludeIPs = reserved.map((r) => r.address);
      const by = [...new Set(reserved.map((r) => r.by))].join(", ");
      note.reason = `SpiderReservedIP ${by} reserves ${reserved.length} of its addresses: adopt adds them to its excludeIPs, so berth keeps them reserved`;
    }
    if (objects.get(p.name)?.metadata.deletionTimestamp) note.reason += " (being deleted)";
    notes.push(note);
  }
  // Addresses no pool holds, by the source's range they come from.
  const needed = new Map<string, PoolNote>();
  for (const item of plan.filter((i) => i.pool === null && i.action === "adopt")) {
    const a = parseAddress(item.address)!;
    const range = read.ranges.find((r) => {
      const s = parseSubnet(r.range);
      return s.ok && s.subnet.family === a.family && a.value >= s.subnet.start && a.value <= s.subnet.end;
    });
    const key = range?.range ?? item.address;
    let note = needed.get(key);
    if (!note) {
      const s = range ? parseSubnet(range.range) : undefined;
      const usable = s?.ok ? usableRange(s.subnet) : undefined;
      note = {
        name: range ? `${source}-${range.range.replace(/[.:/]+/g, "-")}` : "",
        subnet: range?.range ?? "",
        status: "needed",
        ...(usable ? { ips: [`${formatAddress(usable.family, usable.start)}-${formatAddress(usable.family, usable.end)}`] } : {}),
        addresses: 0,
        reason: range
          ? `${range.from} allocates from ${range.range} and no SpiderIPPool holds its addresses: create one; carry the NAD's range_start/range_end as ips and its exclude as excludeIPs`
          : `no SpiderIPPool holds ${item.address}: create one that does`,
      };
      needed.set(key, note);
    }
    note.addresses++;
  }
  return [...notes, ...needed.values()];
}
