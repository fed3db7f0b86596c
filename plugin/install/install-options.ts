/**
 * `berth install`'s flags: checked here, before anything runs, so that a
 * mistyped flag exits with a usage error (exit 2) instead of a half-done
 * install.
 */
import { basename } from "node:path";
import { LOG_LEVELS, type LogLevel } from "../support/logger.ts";

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Defaults of the flags, as seen from inside the DaemonSet's pod (the host's directories under /host). */
export const INSTALL_DEFAULTS = {
  cniBinDir: "/host/opt/cni/bin",
  kubeconfigOut: "/host/etc/cni/net.d/berth.d/berth.kubeconfig",
  tokenFile: `${SA_DIR}/token`,
  caFile: `${SA_DIR}/ca.crt`,
  intervalSeconds: 30,
} as const;

/** Everything `berth install` needs, validated. */
export interface InstallOptions {
  /** The binary to install. */
  source: string;
  cniBinDir: string;
  kubeconfigOut: string;
  tokenFile: string;
  caFile: string;
  /** API server URL; undefined: from KUBERNETES_SERVICE_HOST/PORT. */
  server?: string;
  /** Install, write the kubeconfig, and exit instead of watching. */
  once: boolean;
  /** Install nothing: exit 0 only if the host already has what install puts there (the readiness probe). */
  check: boolean;
  intervalMs: number;
  logLevel: LogLevel;
}

const VALUE_FLAGS = ["source", "cni-bin-dir", "kubeconfig-out", "token-file", "ca-file", "server", "log-level", "interval-seconds"] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];

/**
 * The value flags as single strings, or the usage error. mri turns a repeated
 * flag into a list and a flag without a value into "" (or `true` when it is
 * not declared a string); none of these is a path or a URL.
 */
function flagValues(args: Record<string, unknown>): Record<ValueFlag, string | undefined> | string {
  const got: Partial<Record<ValueFlag, string>> = {};
  for (const k of VALUE_FLAGS) {
    const v = args[k];
    if (Array.isArray(v)) return `--${k} given more than once`;
    if (v !== undefined && (typeof v === "boolean" || v === "")) return `--${k} needs a value`;
    got[k] = v === undefined ? undefined : String(v);
  }
  return got as Record<ValueFlag, string | undefined>;
}

/**
 * The running executable as the default source, or the usage error: under
 * node or bun (tests, development) it is the runtime, which must never be
 * installed as the plugin.
 */
function defaultSource(execPath: string): { source: string } | string {
  if (/^(node|nodejs|bun)(\.exe)?$/.test(basename(execPath)))
    return `--source PATH is needed: this is not the compiled berth binary (running under ${execPath})`;
  return { source: execPath };
}

/** Whether `server` can be an API server URL: caught here, it is a usage error rather than a connection failure later on the host. */
function isServerUrl(server: string): boolean {
  let url: URL | undefined;
  try {
    url = new URL(server);
  } catch {
    url = undefined;
  }
  return !!url && ["https:", "http:"].includes(url.protocol) && !!url.hostname;
}

/**
 * Turns the CLI's parsed flags into options, or returns the usage error to
 * print. `execPath` is the running executable: the default source, unless it
 * is a runtime (node, bun) rather than the compiled berth.
 */
export function installOptions(args: Record<string, unknown>, positionals: string[], execPath: string = process.execPath): InstallOptions | string {
  if (positionals.length > 0) return `install takes no arguments, got ${JSON.stringify(positionals.join(" "))}`;
  const got = flagValues(args);
  if (typeof got === "string") return got;
  let source = got.source;
  if (source === undefined) {
    const fallback = defaultSource(execPath);
    if (typeof fallback === "string") return fallback;
    source = fallback.source;
  }
  const interval = got["interval-seconds"] === undefined ? INSTALL_DEFAULTS.intervalSeconds : Number(got["interval-seconds"]);
  if (!(interval > 0) || !Number.isFinite(interval)) return `--interval-seconds must be a positive number, got ${JSON.stringify(got["interval-seconds"])}`;
  if (got.server !== undefined && !isServerUrl(got.server)) return `--server must be a URL such as https://10.96.0.1:443, got ${JSON.stringify(got.server)}`;
  if (args.check === true && args.once === true) return "--check and --once do not go together: --check installs nothing";
  const logLevel = (got["log-level"] ?? "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) return `--log-level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(got["log-level"])}`;
  return {
    source,
    cniBinDir: got["cni-bin-dir"] ?? INSTALL_DEFAULTS.cniBinDir,
    kubeconfigOut: got["kubeconfig-out"] ?? INSTALL_DEFAULTS.kubeconfigOut,
    tokenFile: got["token-file"] ?? INSTALL_DEFAULTS.tokenFile,
    caFile: got["ca-file"] ?? INSTALL_DEFAULTS.caFile,
    server: got.server,
    once: args.once === true,
    check: args.check === true,
    intervalMs: interval * 1000,
    logLevel,
  };
}
