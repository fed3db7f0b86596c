/**
 * All IP arithmetic of berth: addresses are bigints tagged with their family.
 * Parsing and formatting lean on ip-bigint / cidr-tools. Their parsers are
 * lenient ("1.2.3.256" parses), so syntax is checked here first. Not with
 * node:net's isIP: loading node:net costs ~3 ms of the compiled binary's
 * start-up (measured, see BENCHMARKS.md), a third of a whole ADD.
 */

import { parseCidr } from "cidr-tools";
import { parseIp, stringifyIp } from "ip-bigint";

export type Family = 4 | 6;

/** An inclusive range of addresses of one family. */
export interface IpRange {
  family: Family;
  start: bigint;
  end: bigint;
}

/** A parsed subnet: its network address, prefix length and first/last address. */
export interface Subnet {
  family: Family;
  prefix: number;
  start: bigint;
  end: bigint;
  /** Canonical text, e.g. "10.6.0.0/16". */
  cidr: string;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4_RE = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);
const HEXTET_RE = /^[0-9a-fA-F]{1,4}$/;

/** Dotted quad without leading zeros (as Go's net.ParseIP since 1.17). */
function isIPv4(text: string): boolean {
  return IPV4_RE.test(text);
}

/** Colon-hex IPv6 with at most one "::". Zone ids and embedded dotted quads are not pool addresses. */
function isIPv6(text: string): boolean {
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const groups = halves.map((h) => (h === "" ? [] : h.split(":")));
  if (!groups.every((g) => g.every((x) => HEXTET_RE.test(x)))) return false;
  const count = groups[0].length + (groups[1]?.length ?? 0);
  return halves.length === 2 ? count <= 7 : count === 8;
}

/** Parses one address strictly. Returns undefined for anything that is not a plain IPv4/IPv6 address. */
export function parseAddress(text: string): { family: Family; value: bigint } | undefined {
  if (typeof text !== "string") return undefined;
  const family: Family | 0 = isIPv4(text) ? 4 : text.includes(":") && isIPv6(text) ? 6 : 0;
  if (family === 0) return undefined;
  return { family, value: parseIp(text).number };
}

/** Canonical text of an address (IPv6 compressed, lower case). */
export function formatAddress(family: Family, value: bigint): string {
  return stringifyIp({ number: value, version: family });
}

/** Uncompressed text (IPv6 "fd00:6:0:0:0:0:0:101"); IPv4 as usual. */
export function formatAddressLong(family: Family, value: bigint): string {
  return stringifyIp({ number: value, version: family }, { compress: false });
}

/** Canonical text of a textual address, or undefined when it is not one. */
export function normalizeAddress(text: string): string | undefined {
  const a = parseAddress(text);
  return a && formatAddress(a.family, a.value);
}

/** The family of a textual address, or undefined. */
export function addressFamily(text: string): Family | undefined {
  return parseAddress(text)?.family;
}

export type SubnetParse = { ok: true; subnet: Subnet } | { ok: false; reason: string };

/**
 * Parses "addr/prefix". Host bits must be zero, as operators expect of a
 * subnet field (10.6.1.0/16 is almost always a typo for 10.6.0.0/16).
 */
export function parseSubnet(text: string): SubnetParse {
  if (typeof text !== "string") return { ok: false, reason: "not a string" };
  const slash = text.indexOf("/");
  if (slash < 0) return { ok: false, reason: "missing prefix length" };
  const addr = parseAddress(text.slice(0, slash));
  if (!addr) return { ok: false, reason: "not an IP address" };
  const prefixText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return { ok: false, reason: "bad prefix length" };
  const prefix = Number(prefixText);
  if (prefix > BITS[addr.family]) return { ok: false, reason: `prefix length ${prefix} too long for IPv${addr.family}` };
  const { start, end } = parseCidr(text);
  if (start !== addr.value) {
    return { ok: false, reason: `host bits set (network address is ${formatAddress(addr.family, start)}/${prefix})` };
  }
  return { ok: true, subnet: { family: addr.family, prefix, start, end, cidr: `${formatAddress(addr.family, start)}/${prefix}` } };
}

/** Parses "a" or "a-b" (inclusive). Returns a reason string on failure. */
export function parseRange(text: string): IpRange | string {
  if (typeof text !== "string") return "not a string";
  const dash = text.indexOf("-");
  const first = parseAddress(dash < 0 ? text : text.slice(0, dash));
  if (!first) return "not an IP address or range";
  if (dash < 0) return { family: first.family, start: first.value, end: first.value };
  const last = parseAddress(text.slice(dash + 1));
  if (!last) return "range end is not an IP address";
  if (last.family !== first.family) return "range mixes IPv4 and IPv6";
  if (last.value < first.value) return "range end is before its start";
  return { family: first.family, start: first.value, end: last.value };
}

/** Number of addresses in a list of disjoint ranges. */
export function countAddresses(ranges: readonly IpRange[]): bigint {
  let n = 0n;
  for (const r of ranges) n += r.end - r.start + 1n;
  return n;
}

/** Sorts and merges overlapping or adjacent ranges. */
export function mergeRanges(ranges: readonly IpRange[]): IpRange[] {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: IpRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end + 1n) {
      if (r.end > last.end) last.end = r.end;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

/** Removes every address of `remove` from `ranges`; the result is merged and sorted. */
export function subtractRanges(ranges: readonly IpRange[], remove: readonly IpRange[]): IpRange[] {
  let current = mergeRanges(ranges);
  for (const cut of mergeRanges(remove)) {
    const next: IpRange[] = [];
    for (const r of current) {
      if (cut.end < r.start || cut.start > r.end) {
        next.push(r);
        continue;
      }
      if (cut.start > r.start) next.push({ family: r.family, start: r.start, end: cut.start - 1n });
      if (cut.end < r.end) next.push({ family: r.family, start: cut.end + 1n, end: r.end });
    }
    current = next;
  }
  return current;
}

/** True when some address lies in both lists. */
export function rangesOverlap(a: readonly IpRange[], b: readonly IpRange[]): boolean {
  return a.some((x) => b.some((y) => x.family === y.family && x.start <= y.end && y.start <= x.end));
}

/** True when `value` lies in one of the ranges. */
export function inRanges(value: bigint, ranges: readonly IpRange[]): boolean {
  return ranges.some((r) => value >= r.start && value <= r.end);
}

/** True when the whole range lies inside the subnet. */
export function rangeInSubnet(r: IpRange, s: Subnet): boolean {
  return r.family === s.family && r.start >= s.start && r.end <= s.end;
}

/**
 * The addresses of a subnet a pool may hand out when the operator listed no
 * `ips`: all of it, minus the network and broadcast addresses for IPv4
 * subnets larger than /31 and minus the subnet-router anycast address (::0 of
 * the subnet) for IPv6 subnets larger than /127.
 */
export function usableRange(s: Subnet): IpRange {
  const hostBits = BITS[s.family] - s.prefix;
  if (s.family === 4 && hostBits >= 2) return { family: 4, start: s.start + 1n, end: s.end - 1n };
  if (s.family === 6 && hostBits >= 2) return { family: 6, start: s.start + 1n, end: s.end };
  return { family: s.family, start: s.start, end: s.end };
}

/** The `index`-th address (0-based) of a list of disjoint ranges; undefined past the end. */
export function addressAt(ranges: readonly IpRange[], index: bigint): bigint | undefined {
  let i = index;
  for (const r of ranges) {
    const size = r.end - r.start + 1n;
    if (i < size) return r.start + i;
    i -= size;
  }
  return undefined;
}

/**
 * Walks the ranges once, starting just after `after` (round-robin, like
 * host-local, so a just-released address is not handed out again at once),
 * and returns the first address for which `isFree` says yes.
 */
export function findFree(ranges: readonly IpRange[], after: bigint | undefined, isFree: (value: bigint) => boolean): bigint | undefined {
  if (ranges.length === 0) return undefined;
  // Find where to start: the range holding `after`, at after+1.
  let ri = 0;
  let cur = ranges[0].start;
  if (after !== undefined) {
    const idx = ranges.findIndex((r) => after <= r.end);
    if (idx >= 0) {
      ri = idx;
      cur = after >= ranges[idx].start ? after + 1n : ranges[idx].start;
      if (cur > ranges[ri].end) {
        ri = (ri + 1) % ranges.length;
        cur = ranges[ri].start;
      }
    }
  }
  const total = countAddresses(ranges);
  for (let seen = 0n; seen < total; seen++) {
    if (isFree(cur)) return cur;
    if (cur >= ranges[ri].end) {
      ri = (ri + 1) % ranges.length;
      cur = ranges[ri].start;
    } else {
      cur++;
    }
  }
  return undefined;
}
