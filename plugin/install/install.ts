/**
 * `berth install`: what the DaemonSet runs on every node. Copies this binary
 * into the host's CNI bin directory and writes the plugin's kubeconfig from
 * the pod's service-account token, then keeps that kubeconfig current while
 * the token rotates.
 */
import { accessSync, chmodSync, constants, lstatSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { LOG_LEVELS, type LogLevel, type Logger, createLogger } from "../support/logger.ts";
import { InstallError, copyFileAtomic, describeError, fileDigest, modeOf, removeStaleTemps, writeFileAtomic } from "./atomic-file.ts";
import { inClusterServer, renderKubeconfig } from "./kubeconfig.ts";

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Defaults of the flags, as seen from inside the DaemonSet's pod (the host's directories under /host). */
export const INSTALL_DEFAULTS = {
  cniBinDir: "/host/opt/cni/bin",
  kubeconfigOut: "/host/etc/cni/net.d/berth.d/berth.kubeconfig",
  tokenFile: `${SA_DIR}/token`,
  caFile: `${SA_DIR}/ca.crt`,
  intervalSeconds: 30,
} as const;

/** The plugin's file name in the CNI bin directory (the `type` in network configurations). */
export const PLUGIN_NAME = "berth";

/** Temporary files older than this in the bin directory are leftovers of an interrupted install. */
const STALE_TEMP_MS = 10 * 60_000;

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
  intervalMs: number;
  logLevel: LogLevel;
}


/**
 * Turns the CLI's parsed flags into options, or returns the usage error to
 * print. `execPath` is the running executable: the default source, unless it
 * is a runtime (node, bun) rather than the compiled berth.
 */
export function installOptions(args: Record<string, unknown>, positionals: string[], execPath: string = process.execPath): InstallOptions | string {
  if (positionals.length > 0) return `install takes no arguments, got ${JSON.stringify(positionals.join(" "))}`;
  const flags = ["source", "cni-bin-dir", "kubeconfig-out", "token-file", "ca-file", "server", "log-level", "interval-seconds"] as const;
  const got: Record<string, string | undefined> = {};
  for (const k of flags) {
    const v = args[k];
    if (Array.isArray(v)) return `--${k} given more than once`;
    if (v !== undefined && (typeof v === "boolean" || v === "")) return `--${k} needs a value`;
    got[k] = v === undefined ? undefined : String(v);
  }
  let source = got.source;
  if (source === undefined) {
    if (/^(node|nodejs|bun)(\.exe)?$/.test(basename(execPath))) return `--source PATH is needed: this is not the compiled berth binary (running under ${execPath})`;
    source = execPath;
  }
  const interval = got["interval-seconds"] === undefined ? INSTALL_DEFAULTS.intervalSeconds : Number(got["interval-seconds"]);
  if (!(interval > 0) || !Number.isFinite(interval)) return `--interval-seconds must be a positive number, got ${JSON.stringify(got["interval-seconds"])}`;
  if (got.server !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(got.server);
    } catch {
      url = undefined;
    }
    if (!url || !["https:", "http:"].includes(url.protocol) || !url.hostname) return `--server must be a URL such as https://10.96.0.1:443, got ${JSON.stringify(got.server)}`;
  }
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
    intervalMs: interval * 1000,
    logLevel,
  };
}

/**
 * Copies `source` to `<binDir>/berth` unless it already has the same content
 * (size and SHA-256). Returns what it did.
 */
export function installBinary(source: string, binDir: string, log: Logger): "copied" | "unchanged" {
  let src;
  try {
    src = statSync(source);
  } catch (err) {
    throw new InstallError(`cannot read the binary to install ${source}: ${describeError(err)}`);
  }
  if (!src.isFile()) throw new InstallError(`the binary to install ${source} is not a regular file`);
  let dir;
  try {
    dir = statSync(binDir);
  } catch (err) {
    throw new InstallError(`CNI bin dir ${binDir}: ${describeError(err)} (is the host's CNI bin directory mounted there?)`);
  }
  if (!dir.isDirectory()) throw new InstallError(`CNI bin dir ${binDir} is not a directory`);
  try {
    accessSync(binDir, constants.W_OK);
  } catch (err) {
    throw new InstallError(`CNI bin dir ${binDir} is not writable: ${describeError(err)}`);
  }
  for (const p of removeStaleTemps(binDir, PLUGIN_NAME, STALE_TEMP_MS)) log.info("removed a temporary file left by an interrupted install", { path: p });

  const target = join(binDir, PLUGIN_NAME);
  let want;
  try {
    want = fileDigest(source);
  } catch (err) {
    throw new InstallError(`cannot read the binary to install ${source}: ${describeError(err)}`);
  }
  let have: { size: number; sha256: string } | undefined;
  try {
    const st = lstatSync(target);
    if (st.isFile() && st.size === want.size) have = fileDigest(target);
  } catch {
    have = undefined; // absent or unreadable: replace it
  }
  if (have && have.sha256 === want.sha256) {
    if (modeOf(target) !== 0o755) chmodSync(target, 0o755);
    log.info("binary unchanged (identical content)", { path: target, bytes: want.size, sha256: want.sha256 });
    return "unchanged";
  }
  copyFileAtomic(source, target, 0o755, want.sha256);
  log.info("binary copied", { from: source, to: target, bytes: want.size, sha256: want.sha256 });
  return "copied";
}

/** The pod's token and CA as they are now. */
interface Credentials {
  token: string;
  caPem: string;
}

function readCredentials(tokenFile: string, caFile: string): Credentials {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch (err) {
      throw new InstallError(`cannot read the ${what} ${path}: ${describeError(err)}`);
    }
  };
  const token = read(tokenFile, "service-account token file").trim();
  if (!token) throw new InstallError(`the service-account token file ${tokenFile} is empty`);
  const caPem = read(caFile, "CA file");
  if (!caPem.includes("-----BEGIN CERTIFICATE-----")) throw new InstallError(`the CA file ${caFile} holds no PEM certificate`);
  return { token, caPem };
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * Writes `text` to the kubeconfig path (directory 0700, file 0600,
 * atomically) unless it already holds exactly that.
 */
export function writeKubeconfig(path: string, text: string): "written" | "unchanged" {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (modeOf(dir) !== 0o700) chmodSync(dir, 0o700);
  } catch (err) {
    throw new InstallError(`cannot create the kubeconfig directory ${dir}: ${describeError(err)}`);
  }
  if (readIfPresent(path) === text) {
    if (modeOf(path) !== 0o600) chmodSync(path, 0o600);
    return "unchanged";
  }
  writeFileAtomic(path, text, 0o600);
  return "written";
}

/**
 * Runs `berth install`; resolves to the exit code: 0 after `--once`, or on
 * SIGTERM/SIGINT; 1 when a step fails (the log line names the path and cause).
 */
export async function installMain(opts: InstallOptions, env: Record<string, string | undefined> = process.env): Promise<number> {
  const log = createLogger(opts.logLevel, undefined, { component: "install" });
  let stopping = false;
  let wake: (() => void) | undefined;
  // Handlers first: a signal during the (synchronous) copy is acted on after it, never mid-copy.
  const onSignal = (signal: string) => {
    if (!stopping) log.info("stopping", { signal });
    stopping = true;
    wake?.();
  };
  const onTerm = () => onSignal("SIGTERM");
  const onInt = () => onSignal("SIGINT");
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  try {
    // Inputs first, so that nothing on the host changes when they are wrong.
    const server = opts.server ?? inClusterServer(env);
    if (!server) throw new InstallError("no API server: KUBERNETES_SERVICE_HOST is not set (not in a pod?); pass --server URL");
    let creds = readCredentials(opts.tokenFile, opts.caFile);

    installBinary(opts.source, opts.cniBinDir, log);
    const render = (c: Credentials) => renderKubeconfig({ server, caPem: c.caPem, token: c.token });
    // A new installer always writes (it takes over); a running one only replaces what it wrote itself.
    let mine = render(creds);
    const first = writeKubeconfig(opts.kubeconfigOut, mine);
    log.info(first === "written" ? "kubeconfig written" : "kubeconfig unchanged", { path: opts.kubeconfigOut, server, tokenFile: opts.tokenFile, caFile: opts.caFile });
    if (opts.once || stopping) return 0;

    log.info("watching the token and CA files", { everySeconds: opts.intervalMs / 1000 });
    let lastProblem = "";
    let toldTheirs = false;
    while (!stopping) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, opts.intervalMs);
        wake = () => (clearTimeout(t), resolve());
      });
      wake = undefined;
      if (stopping) break;
      try {
        const now = readCredentials(opts.tokenFile, opts.caFile);
        const onDisk = readIfPresent(opts.kubeconfigOut);
        if (onDisk !== undefined && onDisk !== mine) {
          // Another writer: during a surge rollout, the next installer pod with its own token.
          // This pod is about to go; writing its token back would break the plugin once it has.
          if (!toldTheirs) log.info("kubeconfig rewritten by another writer (a newer installer pod?); leaving it to them", { path: opts.kubeconfigOut });
          toldTheirs = true;
        } else {
          const reason = onDisk === undefined ? "kubeconfig missing"
            : now.token !== creds.token ? "token changed"
            : now.caPem !== creds.caPem ? "CA changed"
            : undefined;
          if (reason) {
            const text = render(now);
            writeKubeconfig(opts.kubeconfigOut, text);
            creds = now;
            mine = text;
            toldTheirs = false;
            log.info("kubeconfig refreshed", { path: opts.kubeconfigOut, reason });
          }
        }
        lastProblem = "";
      } catch (err) {
        if (!(err instanceof InstallError)) throw err;
        // Keep the last good kubeconfig and try again next time; say so once per distinct problem.
        if (err.message !== lastProblem) log.error(`${err.message}; keeping the kubeconfig as it is, retrying every ${opts.intervalMs / 1000}s`);
        lastProblem = err.message;
      }
    }
    log.info("stopped");
    return 0;
  } catch (err) {
    if (!(err instanceof InstallError)) throw err;
    log.error(err.message);
    return 1;
  } finally {
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onInt);
  }
}
