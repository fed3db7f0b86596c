/**
 * SpiderIPPool's affinity fields: who may use a pool. Only cluster mode reads
 * them; a local netconf has no pods' or nodes' labels to match against.
 */
import { FieldError, stringList } from "./field-error.ts";
import type { Subnet } from "./ip.ts";
import type { LabelSelector } from "./label-selector.ts";

/** SpiderIPPool's restrictions on who may use a pool. Absent fields restrict nothing. */
export interface PoolAffinity {
  podAffinity?: LabelSelector;
  namespaceAffinity?: LabelSelector;
  nodeAffinity?: LabelSelector;
  namespaceName?: string[];
  nodeName?: string[];
  multusName?: string[];
}

/**
 * Throws unless a given `ipVersion` matches the subnet: berth takes the
 * family from the subnet, so a disagreeing ipVersion means the spec is not
 * what its author thinks.
 */
export function checkIpVersion(at: string, entry: Record<string, unknown>, subnet: Subnet): void {
  if (entry.ipVersion !== undefined && entry.ipVersion !== subnet.family) {
    throw new FieldError(`${at}.ipVersion`, entry.ipVersion, `subnet ${subnet.cidr} is IPv${subnet.family}`);
  }
}

/**
 * The affinity fields of a SpiderIPPool spec at `at`. Selectors are taken as
 * given: matching refuses what it does not understand (an unknown operator
 * never matches). Null and empty lists are left out, so they restrict nothing.
 */
export function parseAffinity(at: string, entry: Record<string, unknown>): PoolAffinity {
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
  return affinity;
}
