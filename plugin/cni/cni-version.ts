/** CNI spec versions berth speaks: which commands each allows, and the shape of results. */
import type { AddResult, CniCommand } from "../ipam/command.ts";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export const LATEST_VERSION = "1.1.0";

/** The first version that has each command (ADD, DEL and VERSION are in all). */
const INTRODUCED: Partial<Record<CniCommand, string>> = { CHECK: "0.4.0", GC: "1.1.0", STATUS: "1.1.0" };

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

/** The version `command` needs when `cniVersion` is older than that, else undefined. */
export function versionNeeded(cniVersion: string, command: CniCommand): string | undefined {
  const since = INTRODUCED[command];
  return since !== undefined && compareVersions(cniVersion, since) < 0 ? since : undefined;
}

/**
 * Shapes an ADD result for the config's version: 0.3.x and 0.4.0 carry
 * `ips[].version`, 1.x does not. IPAM results have no interfaces.
 */
export function formatResult(cniVersion: string, result: AddResult): Record<string, unknown> {
  const legacy = compareVersions(cniVersion, "1.0.0") < 0;
  return {
    cniVersion,
    ips: result.ips.map((ip) => {
      const o: Record<string, string> = {};
      if (legacy) o.version = String(ip.family);
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    }),
    routes: result.routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst })),
    dns: {},
  };
}
