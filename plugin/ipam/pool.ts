/**
 * Pools as berth uses them: a SpiderIPPool-shaped entry, validated and
 * normalised into the ranges it may hand out.
 */
import {
  type Family,
  type IpRange,
  type Subnet,
  countAddresses,
  formatAddress,
  inRanges,
  mergeRanges,
  parseAddress,
  parseRange,
  parseSubnet,
  rangeInSubnet,
  subtractRanges,
  usableRange,
} from "./ip.ts";
import { brand } from "../support/errors.ts";
import type { ResultIp } from "./command.ts";
import type { LabelSelector } from "./label-selector.ts";

export interface PoolRoute {
  dst: string;
  gw?: string;
}

/** A validated pool. `ranges` are what it may hand out: ips − excludeIPs − gateway. */
export interface Pool {
  name: string;
  family: Family;
  subnet: Subnet;
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

/** SpiderIPPool's restrictions on who may use a pool. Absent fields restrict nothing. */
export interface PoolAffinity {
  podAffinity?: LabelSelector;
  namespaceAffinity?: LabelSelector;
  nodeAffinity?: LabelSelector;
  namespaceName?: string[];
  nodeName?: string[];
  multusName?: string[];
}

const POOL_FIELDS = new Set(["name", "subnet", "ips", "excludeIPs", "gateway", "routes", "default", "disable"]);
// SpiderIPPool spec fields that only mean something with an API server.
const CLUSTER_FIELDS = new Set(["ipVersion", "vlan", "podAffinity", "namespaceAffinity", "nodeAffinity", "namespaceName", "nodeName", "multusName"]);
const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Thrown for a field that is present but wrong; `unsupported` marks an unknown field (CNI code 2). */
export class FieldError extends Error {
  static readonly brand = "FieldError";
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
    readonly unsupported = false,
  ) {
    super(`${unsupported ? "unsupported field" : "invalid"} ${field}${value === undefined ? "" : ` ${JSON.stringify(value)}`}: ${reason}`);
    brand(this, FieldError.brand);
  }
}

function stringList(field: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new FieldError(field, value, "must be a list of strings");
  }
  return value;
}

function optionalBool(field: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw new FieldError(field, value, "must be true or false");
  return value;
}

/**
 * Validates one pool entry found at `field` (e.g. "ipam.pools[0]", or
 * "spiderippool test-ippool spec"). With `cluster`, the entry is a
 * SpiderIPPool spec plus its name and may carry the affinity fields.
 */
export function parsePool(field: string, raw: unknown, cluster = false): Pool {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FieldError(field, raw, "must be an object");
  }
  const entry = raw as Record<string, unknown>;
  for (const key of Object.keys(entry)) {
    if (!POOL_FIELDS.has(key) && !(cluster && CLUSTER_FIELDS.has(key))) throw new FieldError(`${field}.${key}`, undefined, "not a pool field", true);
  }
  const name = entry.name;
  if (typeof name !== "string" || name.length > 253 || !NAME_RE.test(name)) {
    throw new FieldError(`${field}.name`, name, "must be a Kubernetes object name (lower-case letters, digits, '-' and '.')");
  }
  const at = field;
  if (typeof entry.subnet !== "string") throw new FieldError(`${at}.subnet`, entry.subnet, "must be a CIDR such as 10.6.0.0/16");
  const parsed = parseSubnet(entry.subnet);
  if (!parsed.ok) throw new FieldError(`${at}.subnet`, entry.subnet, parsed.reason);
  const subnet = parsed.subnet;

  const inSubnet = (key: string, texts: string[]): IpRange[] =>
    texts.map((text) => {
      const r = parseRange(text);
      if (typeof r === "string") throw new FieldError(`${at}.${key}`, text, r);
      if (!rangeInSubnet(r, subnet)) throw new FieldError(`${at}.${key}`, text, `outside subnet ${subnet.cidr}`);
      return r;
    });

  let ranges = entry.ips === undefined ? [usableRange(subnet)] : inSubnet("ips", stringList(`${at}.ips`, entry.ips));
  const excludes = entry.excludeIPs === undefined ? [] : inSubnet("excludeIPs", stringList(`${at}.excludeIPs`, entry.excludeIPs));

  let gateway: string | undefined;
  if (entry.gateway !== undefined) {
    const gw = typeof entry.gateway === "string" ? parseAddress(entry.gateway) : undefined;
    if (!gw) throw new FieldError(`${at}.gateway`, entry.gateway, "must be an IP address");
    if (gw.family !== subnet.family || gw.value < subnet.start || gw.value > subnet.end) {
      throw new FieldError(`${at}.gateway`, entry.gateway, `outside subnet ${subnet.cidr}`);
    }
    gateway = formatAddress(gw.family, gw.value);
    // Never hand the gateway to a pod, even when the operator's ips cover it.
    excludes.push({ family: gw.family, start: gw.value, end: gw.value });
  }
  ranges = subtractRanges(mergeRanges(ranges), excludes);

  let routes: PoolRoute[] = [];
  if (entry.routes !== undefined) {
    if (!Array.isArray(entry.routes)) throw new FieldError(`${at}.routes`, entry.routes, "must be a list of {dst, gw}");
    routes = entry.routes.map((r, i) => parseRoute(`${at}.routes[${i}]`, r, subnet.family));
  }

  const pool: Pool = {
    name,
    family: subnet.family,
    subnet,
    ranges,
    total: countAddresses(ranges),
    routes,
    default: optionalBool(`${at}.default`, entry.default),
    disable: optionalBool(`${at}.disable`, entry.disable),
  };
  if (gateway) pool.gateway = gateway;
  if (cluster) {
    if (entry.ipVersion !== undefined && entry.ipVersion !== subnet.family) {
      throw new FieldError(`${at}.ipVersion`, entry.ipVersion, `subnet ${subnet.cidr} is IPv${subnet.family}`);
    }
    const affinity: PoolAffinity = {};
    for (const key of ["podAffinity", "namespaceAffinity", "nodeAffinity"] as const) {
      if (entry[key] !== undefined && entry[key] !== null) affinity[key] = entry[key] as LabelSelector;
    }
    for (const key of ["namespaceName", "nodeName", "multusName"] as const) {
      if (entry[key] !== undefined && entry[key] !== null) {
        const list = stringList(`${at}.${key}`, entry[key]);
        if (list.length) affinity[key] = list;
      }
    }
    pool.affinity = affinity;
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
  for (const x of a) for (const y of b) {
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
