/**
 * Pools as berth uses them: a SpiderIPPool-shaped entry, validated and
 * normalised into the ranges it may hand out.
 */

import type { ResultIp } from "./command.ts";
import { FieldError, stringList } from "./field-error.ts";
import {
  countAddresses,
  type Family,
  formatAddress,
  type IpRange,
  inRanges,
  mergeRanges,
  parseAddress,
  parseRange,
  parseSubnet,
  rangeInSubnet,
  type Subnet,
  subtractRanges,
  usableRange,
} from "./ip.ts";
import { checkIpVersion, type PoolAffinity, parseAffinity } from "./pool-affinity.ts";

// Re-exported so that this module stays the one import for pools and their errors.
export { FieldError } from "./field-error.ts";
export type { PoolAffinity } from "./pool-affinity.ts";

/** A route that ADD results carry for every address from the pool (a CNI result `routes` entry). */
export interface PoolRoute {
  dst: string;
  gw?: string;
}

/** A validated pool. `ranges` are what it may hand out: ips − excludeIPs − gateway. */
export interface Pool {
  name: string;
  family: Family;
  subnet: Subnet;
  /** Its `ips` (the subnet's usable range when absent), merged: what it covers, excluded addresses included. */
  ips: IpRange[];
  ranges: IpRange[];
  total: bigint;
  gateway?: string;
  routes: PoolRoute[];
  default: boolean;
  disable: boolean;
  /** Cluster mode: who may use the pool (SpiderIPPool's affinity fields), as given. */
  affinity?: PoolAffinity;
  /** Cluster mode: the SpiderIPPool is being deleted; it serves its bound pods, no new ones. */
  deleting?: boolean;
}

/** The candidate pools of one family, in the order to try them: what a pool choice yields per family requested. */
export interface FamilyPools {
  family: Family;
  pools: Pool[];
}

const POOL_FIELDS = new Set(["name", "subnet", "ips", "excludeIPs", "gateway", "routes", "default", "disable"]);
// SpiderIPPool spec fields that only mean something with an API server.
const CLUSTER_FIELDS = new Set(["ipVersion", "vlan", "podAffinity", "namespaceAffinity", "nodeAffinity", "namespaceName", "nodeName", "multusName"]);
const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** An optional flag: absent is false, anything but a boolean is refused rather than read as truthy. */
function optionalBool(field: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw new FieldError(field, value, "must be true or false");
  return value;
}

/**
 * `raw` as an object whose keys are all pool fields; unknown keys are refused
 * rather than ignored, because a misspelt field would otherwise silently
 * widen what the pool hands out.
 */
function poolEntry(field: string, raw: unknown, cluster: boolean): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FieldError(field, raw, "must be an object");
  }
  const entry = raw as Record<string, unknown>;
  for (const key of Object.keys(entry)) {
    if (!POOL_FIELDS.has(key) && !(cluster && CLUSTER_FIELDS.has(key))) throw new FieldError(`${field}.${key}`, undefined, "not a pool field", true);
  }
  return entry;
}

/** The pool's name, held to Kubernetes object-name rules because in cluster mode it is a SpiderIPPool's name. */
function parseName(at: string, name: unknown): string {
  if (typeof name !== "string" || name.length > 253 || !NAME_RE.test(name)) {
    throw new FieldError(`${at}.name`, name, "must be a Kubernetes object name (lower-case letters, digits, '-' and '.')");
  }
  return name;
}

/** The pool's subnet, which every other address field is checked against. */
function parsePoolSubnet(at: string, value: unknown): Subnet {
  if (typeof value !== "string") throw new FieldError(`${at}.subnet`, value, "must be a CIDR such as 10.6.0.0/16");
  const parsed = parseSubnet(value);
  if (!parsed.ok) throw new FieldError(`${at}.subnet`, value, parsed.reason);
  return parsed.subnet;
}

/**
 * `ips` (default: the subnet's usable range) and `excludeIPs`, each entry
 * inside the subnet: an address outside it could be handed out but not routed.
 */
function parseAddressLists(at: string, entry: Record<string, unknown>, subnet: Subnet): { ips: IpRange[]; excludes: IpRange[] } {
  const inSubnet = (key: string, texts: string[]): IpRange[] =>
    texts.map((text) => {
      const r = parseRange(text);
      if (typeof r === "string") throw new FieldError(`${at}.${key}`, text, r);
      if (!rangeInSubnet(r, subnet)) throw new FieldError(`${at}.${key}`, text, `outside subnet ${subnet.cidr}`);
      return r;
    });
  const ips = entry.ips === undefined ? [usableRange(subnet)] : inSubnet("ips", stringList(`${at}.ips`, entry.ips));
  const excludes = entry.excludeIPs === undefined ? [] : inSubnet("excludeIPs", stringList(`${at}.excludeIPs`, entry.excludeIPs));
  return { ips, excludes };
}

/** The gateway, normalised, with its one-address range so that it can be excluded; undefined when absent. */
function parseGateway(at: string, value: unknown, subnet: Subnet): { text: string; range: IpRange } | undefined {
  if (value === undefined) return undefined;
  const gw = typeof value === "string" ? parseAddress(value) : undefined;
  if (!gw) throw new FieldError(`${at}.gateway`, value, "must be an IP address");
  if (gw.family !== subnet.family || gw.value < subnet.start || gw.value > subnet.end) {
    throw new FieldError(`${at}.gateway`, value, `outside subnet ${subnet.cidr}`);
  }
  return { text: formatAddress(gw.family, gw.value), range: { family: gw.family, start: gw.value, end: gw.value } };
}

/** The routes; each must be of the subnet's family, since the pool hands out only that family. */
function parseRoutes(at: string, value: unknown, family: Family): PoolRoute[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new FieldError(`${at}.routes`, value, "must be a list of {dst, gw}");
  return value.map((r, i) => parseRoute(`${at}.routes[${i}]`, r, family));
}

/** `default` and `disable`, both false when absent. */
function parseFlags(at: string, entry: Record<string, unknown>): { default: boolean; disable: boolean } {
  return { default: optionalBool(`${at}.default`, entry.default), disable: optionalBool(`${at}.disable`, entry.disable) };
}

/**
 * Validates one pool entry found at `field` (e.g. "ipam.pools[0]", or
 * "spiderippool test-ippool spec"). With `cluster`, the entry is a
 * SpiderIPPool spec plus its name and may carry the affinity fields.
 * Fields are checked in a fixed order, so the first error reported is stable.
 */
export function parsePool(field: string, raw: unknown, cluster = false): Pool {
  const entry = poolEntry(field, raw, cluster);
  const name = parseName(field, entry.name);
  const subnet = parsePoolSubnet(field, entry.subnet);
  const { ips, excludes } = parseAddressLists(field, entry, subnet);
  const gateway = parseGateway(field, entry.gateway, subnet);
  // Never hand the gateway to a pod, even when the operator's ips cover it.
  if (gateway) excludes.push(gateway.range);
  const covered = mergeRanges(ips);
  const ranges = subtractRanges(covered, excludes);
  const pool: Pool = {
    name,
    family: subnet.family,
    subnet,
    ips: covered,
    ranges,
    total: countAddresses(ranges),
    routes: parseRoutes(field, entry.routes, subnet.family),
    ...parseFlags(field, entry),
  };
  if (gateway) pool.gateway = gateway.text;
  if (cluster) {
    checkIpVersion(field, entry, subnet);
    pool.affinity = parseAffinity(field, entry);
  }
  return pool;
}

function parseRoute(field: string, raw: unknown, family: Family): PoolRoute {
  if (typeof raw !== "object" || raw === null) throw new FieldError(field, raw, "must be an object {dst, gw}");
  const { dst, gw, ...rest } = raw as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra) throw new FieldError(`${field}.${extra}`, undefined, "not a route field", true);
  if (typeof dst !== "string") throw new FieldError(`${field}.dst`, dst, "must be a CIDR");
  const d = parseSubnet(dst);
  if (!d.ok) throw new FieldError(`${field}.dst`, dst, d.reason);
  if (d.subnet.family !== family) throw new FieldError(`${field}.dst`, dst, `not IPv${family} like the pool's subnet`);
  const route: PoolRoute = { dst: d.subnet.cidr };
  if (gw !== undefined) {
    const g = typeof gw === "string" ? parseAddress(gw) : undefined;
    if (!g || g.family !== family) throw new FieldError(`${field}.gw`, gw, `must be an IPv${family} address`);
    route.gw = formatAddress(g.family, g.value);
  }
  return route;
}

/** Validates the whole list: each entry, unique names, no address in two pools. */
export function parsePools(field: string, raw: unknown): Pool[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new FieldError(field, raw, "must be a list of pools");
  const pools = raw.map((p, i) => parsePool(`${field}[${i}]`, p));
  const byName = new Map<string, Pool>();
  pools.forEach((p, i) => {
    if (byName.has(p.name)) throw new FieldError(`${field}[${i}].name`, p.name, "duplicate pool name");
    for (const other of byName.values()) {
      const clash = firstShared(p.ranges, other.ranges);
      if (clash !== undefined) {
        throw new FieldError(`${field}[${i}].ips`, undefined, `pool ${p.name} overlaps pool ${other.name} (both hold ${formatAddress(p.family, clash)})`);
      }
    }
    byName.set(p.name, p);
  });
  return pools;
}

function firstShared(a: IpRange[], b: IpRange[]): bigint | undefined {
  for (const x of a)
    for (const y of b) {
      if (x.family === y.family && x.start <= y.end && y.start <= x.end) return x.start > y.start ? x.start : y.start;
    }
  return undefined;
}

/** The "addr/prefix" text of an address of this pool. */
export function withPrefix(pool: Pool, address: string): string {
  return `${address}/${pool.subnet.prefix}`;
}

/** Whether `pool` may hand out `address` (right family, inside its ranges). */
export function poolContains(pool: Pool, address: string): boolean {
  const a = parseAddress(address);
  return !!a && a.family === pool.family && inRanges(a.value, pool.ranges);
}

/** `address` of `pool` as an ADD result reports it: with the pool's prefix and gateway. */
export function resultIp(pool: Pool, address: string): ResultIp {
  return { family: pool.family, address: withPrefix(pool, address), ...(pool.gateway ? { gateway: pool.gateway } : {}) };
}
