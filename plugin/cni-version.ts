/** CNI spec versions berth speaks, and the shape of results for each. */
import type { Family } from "./ip.ts";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export const LATEST_VERSION = "1.1.0";

/** Compares two "x.y.z" versions numerically. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function isSupportedVersion(v: unknown): v is string {
  return typeof v === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** One address handed out, as the result needs it. */
export interface ResultIp {
  family: Family;
  /** address/prefix, e.g. "10.6.168.101/16" */
  address: string;
  gateway?: string;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
}

/**
 * Builds the IPAM result in the shape of the config's version: 0.3.x and
 * 0.4.0 carry `ips[].version`, 1.x does not. IPAM results have no interfaces.
 */
export function formatResult(cniVersion: string, ips: ResultIp[], routes: ResultRoute[]): Record<string, unknown> {
  const legacy = compareVersions(cniVersion, "1.0.0") < 0;
  return {
    cniVersion,
    ips: ips.map((ip) => {
      const o: Record<string, string> = {};
      if (legacy) o.version = String(ip.family);
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    }),
    routes: routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst })),
    dns: {},
  };
}
