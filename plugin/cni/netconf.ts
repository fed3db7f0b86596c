/**
 * Parses and validates the network configuration berth receives on stdin.
 * Everything is checked here, before any store is opened, so bad input
 * changes nothing.
 */
import { isAbsolute, join } from "node:path";
import { DEFAULT_DATA_DIR, type NetConf, type ValidAttachment } from "../ipam/config.ts";
import type { Family } from "../ipam/ip.ts";
import { FieldError, type Pool, parsePools } from "../ipam/pool.ts";
import { isKind } from "../support/errors.ts";
import { LOG_LEVELS, type LogLevel } from "../support/logger.ts";
import { CniError, Code } from "./cni-error.ts";
import { isSupportedVersion } from "./cni-version.ts";

const IPAM_FIELDS = new Set([
  "type",
  "dataDir",
  "kubeconfig",
  "nodeName",
  "pools",
  "default_ipv4_ippool",
  "default_ipv6_ippool",
  "enableStatefulSet",
  "logFile",
  "logLevel",
  "timeoutSeconds",
]);
const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function invalid(field: string, value: unknown, reason: string): never {
  throw new FieldError(field, value, reason);
}

/** Reads `cniVersion` leniently, for shaping an error reply even when the rest is broken. */
export function sniffVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown })?.cniVersion;
    return isSupportedVersion(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Parses stdin into a NetConf, or throws a CniError (6 undecodable, 1 version, 2 unknown field, 7 invalid). */
export function parseNetConf(stdin: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(Code.DecodeFailure, "failed to decode network configuration from stdin", (err as Error).message, { cause: err });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CniError(Code.InvalidConfig, "invalid network configuration: must be a JSON object", `got ${JSON.stringify(raw)}`);
  }
  const conf = raw as Record<string, unknown>;
  if (conf.cniVersion === undefined) throw new CniError(Code.InvalidConfig, "invalid cniVersion: missing");
  if (!isSupportedVersion(conf.cniVersion)) {
    throw new CniError(
      Code.IncompatibleVersion,
      `incompatible CNI version ${JSON.stringify(conf.cniVersion)}`,
      "berth supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
    );
  }
  try {
    return normalise(conf, conf.cniVersion);
  } catch (err) {
    if (isKind(err, FieldError)) {
      throw new CniError(err.unsupported ? Code.UnsupportedField : Code.InvalidConfig, err.message, "", { cause: err });
    }
    throw err;
  }
}

function normalise(conf: Record<string, unknown>, cniVersion: string): NetConf {
  if (typeof conf.name !== "string" || !NETWORK_NAME_RE.test(conf.name)) {
    invalid("name", conf.name, "must start with a letter or digit, then letters, digits, '_', '.', '-'");
  }
  const ipamRaw = conf.ipam;
  if (typeof ipamRaw !== "object" || ipamRaw === null || Array.isArray(ipamRaw)) invalid("ipam", ipamRaw, "must be an object");
  const ipam = ipamRaw as Record<string, unknown>;
  for (const key of Object.keys(ipam)) {
    if (!IPAM_FIELDS.has(key)) throw new FieldError(`ipam.${key}`, undefined, "not a berth ipam field", true);
  }
  if (typeof ipam.type !== "string" || ipam.type === "") invalid("ipam.type", ipam.type, "must be a plugin name");

  const dataDir = optionalString("ipam.dataDir", ipam.dataDir) ?? DEFAULT_DATA_DIR;
  if (!isAbsolute(dataDir)) invalid("ipam.dataDir", dataDir, "must be an absolute path");
  const logFile = optionalString("ipam.logFile", ipam.logFile);
  if (logFile !== undefined && !isAbsolute(logFile)) invalid("ipam.logFile", logFile, "must be an absolute path");
  const logLevel = optionalString("ipam.logLevel", ipam.logLevel) ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) invalid("ipam.logLevel", logLevel, `must be one of ${LOG_LEVELS.join(", ")}`);
  const kubeconfig = optionalString("ipam.kubeconfig", ipam.kubeconfig);
  if (kubeconfig !== undefined && !isAbsolute(kubeconfig)) invalid("ipam.kubeconfig", kubeconfig, "must be an absolute path");
  if (ipam.enableStatefulSet !== undefined && typeof ipam.enableStatefulSet !== "boolean") {
    invalid("ipam.enableStatefulSet", ipam.enableStatefulSet, "must be true or false");
  }

  if (kubeconfig !== undefined && ipam.pools !== undefined) {
    invalid("ipam.pools", "(list)", "not used in cluster mode: pools are SpiderIPPool objects on the API server named by ipam.kubeconfig");
  }
  const timeoutSeconds = ipam.timeoutSeconds ?? 30;
  if (typeof timeoutSeconds !== "number" || !(timeoutSeconds > 0 && timeoutSeconds <= 600)) {
    invalid("ipam.timeoutSeconds", ipam.timeoutSeconds, "must be a number of seconds between 0 and 600");
  }
  const pools = parsePools("ipam.pools", ipam.pools);
  const defaultPools: Record<Family, string[]> = {
    4: poolNames("ipam.default_ipv4_ippool", ipam.default_ipv4_ippool),
    6: poolNames("ipam.default_ipv6_ippool", ipam.default_ipv6_ippool),
  };
  if (kubeconfig === undefined) checkLocalPools(pools, defaultPools);

  const out: NetConf = {
    cniVersion,
    name: conf.name as string,
    ipam: {
      type: ipam.type as string,
      dataDir,
      dbPath: join(dataDir, "berth.db"),
      pools,
      defaultPools,
      enableStatefulSet: (ipam.enableStatefulSet as boolean | undefined) ?? true,
      logLevel: logLevel as LogLevel,
      timeoutMs: Math.round((timeoutSeconds as number) * 1000),
    },
  };
  if (kubeconfig !== undefined) out.ipam.kubeconfig = kubeconfig;
  const nodeName = optionalString("ipam.nodeName", ipam.nodeName);
  if (nodeName !== undefined) out.ipam.nodeName = nodeName;
  if (logFile !== undefined) out.ipam.logFile = logFile;
  if (conf.prevResult !== undefined) out.prevIps = prevIps(conf.prevResult);
  const attachments = "cni.dev/valid-attachments" in conf ? conf["cni.dev/valid-attachments"] : conf["cni.dev/attachments"];
  if ("cni.dev/valid-attachments" in conf || "cni.dev/attachments" in conf) {
    out.validAttachments = validAttachments(attachments);
  }
  return out;
}

function optionalString(field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value === "") invalid(field, value, "must be a non-empty string");
  return value;
}

/** Spiderpool spells these as lists; a single name is accepted too. */
function poolNames(field: string, value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string" || v === "")) {
    invalid(field, value, "must be a pool name or a list of pool names");
  }
  return value as string[];
}

/** Local mode: the named default pools must exist, be of the right family, and something must serve. */
function checkLocalPools(pools: Pool[], defaults: Record<Family, string[]>): void {
  for (const family of [4, 6] as const) {
    const field = `ipam.default_ipv${family}_ippool`;
    for (const name of defaults[family]) {
      const pool = pools.find((p) => p.name === name);
      if (!pool) invalid(field, name, "no pool of that name in ipam.pools");
      if (pool.family !== family) invalid(field, name, `pool ${name} is IPv${pool.family}, not IPv${family}`);
    }
  }
  const serves = (f: Family) => defaults[f].length > 0 || pools.some((p) => p.family === f && p.default);
  if (!serves(4) && !serves(6)) {
    invalid(
      "ipam.pools",
      pools.map((p) => p.name),
      'no pool to allocate from: name one in default_ipv4_ippool / default_ipv6_ippool or mark one "default": true',
    );
  }
}

function prevIps(prev: unknown): string[] {
  const ips = (prev as { ips?: unknown })?.ips;
  if (ips === undefined) return [];
  if (!Array.isArray(ips)) invalid("prevResult.ips", ips, "must be a list");
  return ips.map((ip, i) => {
    const a = (ip as { address?: unknown })?.address;
    if (typeof a !== "string") invalid(`prevResult.ips[${i}].address`, a, "must be a CIDR address");
    return a;
  });
}

function validAttachments(value: unknown): ValidAttachment[] {
  if (value === null) return [];
  if (!Array.isArray(value)) invalid("cni.dev/valid-attachments", value, "must be a list of {containerID, ifname}");
  return value.map((a, i) => {
    const { containerID, ifname } = (a ?? {}) as Record<string, unknown>;
    if (typeof containerID !== "string" || typeof ifname !== "string") {
      invalid(`cni.dev/valid-attachments[${i}]`, a, "must have string containerID and ifname");
    }
    return { containerID, ifname };
  });
}
