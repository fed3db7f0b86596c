/**
 * `berth install`: what the DaemonSet runs on every node. Copies this binary
 * into the host's CNI bin directory and writes the plugin's kubeconfig from
 * the pod's service-account token, then keeps that kubeconfig current while
 * the token rotates.
 */
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { isKind } from "../support/errors.ts";
import { createLogger, type Logger } from "../support/logger.ts";
import { describeError, InstallError, modeOf, writeFileAtomic } from "./atomic-file.ts";
import { installBinary } from "./install-binary.ts";
import type { InstallOptions } from "./install-options.ts";
import { inClusterServer, renderKubeconfig } from "./kubeconfig.ts";

// Re-exported: the CLI and the manifest tests know the install command by this module alone.
export { installBinary, PLUGIN_NAME } from "./install-binary.ts";
export { installProblem } from "./install-check.ts";
export { INSTALL_DEFAULTS, type InstallOptions, installOptions } from "./install-options.ts";

/** The pod's token and CA as they are now. */
interface Credentials {
  token: string;
  caPem: string;
}

/** Reads the token and CA, refusing an empty token or a CA without a certificate: a kubeconfig made of them could never authenticate. */
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

/** The file's text, or undefined when it is absent or unreadable: either way it is to be (re)written. */
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

/** The API server to put in the kubeconfig and the pod's credentials; throws InstallError. */
function readInputs(opts: InstallOptions, env: Record<string, string | undefined>): { server: string; creds: Credentials } {
  const server = opts.server ?? inClusterServer(env);
  if (!server) throw new InstallError("no API server: KUBERNETES_SERVICE_HOST is not set (not in a pod?); pass --server URL");
  return { server, creds: readCredentials(opts.tokenFile, opts.caFile) };
}

/** What the refresh loop remembers between rounds. */
interface KubeconfigState {
  /** The credentials in the kubeconfig this installer last wrote. */
  creds: Credentials;
  /** That kubeconfig's text: anything else on disk is another writer's. */
  mine: string;
  /** Whether "rewritten by another writer" was logged since this installer last wrote. */
  toldTheirs: boolean;
}

/**
 * Writes the kubeconfig at start-up. A new installer always writes, even over
 * another pod's file: it is the one taking over.
 */
function writeInitialKubeconfig(opts: InstallOptions, server: string, creds: Credentials, log: Logger): KubeconfigState {
  const mine = renderKubeconfig({ server, caPem: creds.caPem, token: creds.token });
  const first = writeKubeconfig(opts.kubeconfigOut, mine);
  log.info(first === "written" ? "kubeconfig written" : "kubeconfig unchanged", {
    path: opts.kubeconfigOut,
    server,
    tokenFile: opts.tokenFile,
    caFile: opts.caFile,
  });
  return { creds, mine, toldTheirs: false };
}

/**
 * One refresh round: rewrites the kubeconfig when it is missing or the token
 * or CA changed, unless another writer has replaced it. Throws InstallError
 * when a file cannot be read or written.
 */
function refreshKubeconfig(opts: InstallOptions, server: string, state: KubeconfigState, log: Logger): void {
  const now = readCredentials(opts.tokenFile, opts.caFile);
  const onDisk = readIfPresent(opts.kubeconfigOut);
  if (onDisk !== undefined && onDisk !== state.mine) {
    // Another writer: during a surge rollout, the next installer pod with its own token.
    // This pod is about to go; writing its token back would break the plugin once it has.
    if (!state.toldTheirs) log.info("kubeconfig rewritten by another writer (a newer installer pod?); leaving it to them", { path: opts.kubeconfigOut });
    state.toldTheirs = true;
    return;
  }
  const reason =
    onDisk === undefined
      ? "kubeconfig missing"
      : now.token !== state.creds.token
        ? "token changed"
        : now.caPem !== state.creds.caPem
          ? "CA changed"
          : undefined;
  if (!reason) return;
  const text = renderKubeconfig({ server, caPem: now.caPem, token: now.token });
  writeKubeconfig(opts.kubeconfigOut, text);
  state.creds = now;
  state.mine = text;
  state.toldTheirs = false;
  log.info("kubeconfig refreshed", { path: opts.kubeconfigOut, reason });
}

/** SIGTERM (the pod is deleted) and SIGINT (a terminal), as the refresh loop waits for them. */
interface StopSignals {
  /** Whether either signal has arrived. */
  readonly stopping: boolean;
  /** Waits `ms`, or until a signal arrives, so that stopping never waits out an interval. */
  sleep(ms: number): Promise<void>;
  /** Removes the handlers, so that a later signal has its default effect again. */
  close(): void;
}

/** Starts listening for SIGTERM and SIGINT; logs "stopping" on the first one. */
function listenForStop(log: Logger): StopSignals {
  let stopping = false;
  let wake: (() => void) | undefined;
  const onSignal = (signal: string) => {
    if (!stopping) log.info("stopping", { signal });
    stopping = true;
    wake?.();
  };
  const onTerm = () => onSignal("SIGTERM");
  const onInt = () => onSignal("SIGINT");
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  return {
    get stopping() {
      return stopping;
    },
    async sleep(ms) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        wake = () => (clearTimeout(t), resolve());
      });
      wake = undefined;
    },
    close() {
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
    },
  };
}

/**
 * Refreshes the kubeconfig every interval until a stop signal. A failed round
 * keeps the last good kubeconfig, because the plugin can still use it until
 * the old token expires; the problem is logged once until it changes.
 */
async function keepKubeconfigFresh(opts: InstallOptions, server: string, state: KubeconfigState, stop: StopSignals, log: Logger): Promise<void> {
  log.info("watching the token and CA files", { everySeconds: opts.intervalMs / 1000 });
  let lastProblem = "";
  while (!stop.stopping) {
    await stop.sleep(opts.intervalMs);
    if (stop.stopping) break;
    try {
      refreshKubeconfig(opts, server, state, log);
      lastProblem = "";
    } catch (err) {
      if (!isKind(err, InstallError)) throw err;
      if (err.message !== lastProblem) log.error(`${err.message}; keeping the kubeconfig as it is, retrying every ${opts.intervalMs / 1000}s`);
      lastProblem = err.message;
    }
  }
}

/**
 * Runs `berth install`; resolves to the exit code: 0 after `--once`, or on
 * SIGTERM/SIGINT; 1 when a step fails (the log line names the path and cause).
 */
export async function installMain(opts: InstallOptions, env: Record<string, string | undefined> = process.env): Promise<number> {
  const log = createLogger(opts.logLevel, undefined, { component: "install" });
  // Handlers first: a signal during the (synchronous) copy is acted on after it, never mid-copy.
  const stop = listenForStop(log);
  try {
    // Inputs first, so that nothing on the host changes when they are wrong.
    const { server, creds } = readInputs(opts, env);
    installBinary(opts.source, opts.cniBinDir, log);
    const state = writeInitialKubeconfig(opts, server, creds, log);
    if (opts.once || stop.stopping) return 0;
    await keepKubeconfigFresh(opts, server, state, stop, log);
    log.info("stopped");
    return 0;
  } catch (err) {
    if (!isKind(err, InstallError)) throw err;
    log.error(err.message);
    return 1;
  } finally {
    stop.close();
  }
}
