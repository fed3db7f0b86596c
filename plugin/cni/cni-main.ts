/**
 * The CNI boundary: read env and stdin, run one command, print exactly one
 * JSON document (result or error) on stdout, and return the exit code.
 */
import type { OpenDriver } from "../../store/driver.ts";
import type { CommandContext, CommandOutcome, CommandTable, Invocation } from "../ipam/command.ts";
import type { NetConf } from "../ipam/config.ts";
import { localCommands } from "../local/local-commands.ts";
import { createLogger, type Logger } from "../support/logger.ts";
import { readCniEnv } from "./cni-env.ts";
import { CniError, Code } from "./cni-error.ts";
import { formatResult, LATEST_VERSION, SUPPORTED_VERSIONS, versionNeeded } from "./cni-version.ts";
import { logDestination } from "./log-destination.ts";
import { parseNetConf, sniffVersion } from "./netconf.ts";
import { checkPaths } from "./path-policy.ts";
import { toCniError } from "./to-cni-error.ts";

export interface CniIo {
  env: Record<string, string | undefined>;
  readStdin: () => string;
  /** Writes stdout; throws if it cannot (then an ADD is rolled back). */
  write: (text: string) => void;
  openDriver: OpenDriver;
  /** Loads cluster mode's commands (a separate entry of the binary: see main.ts). */
  loadClusterCommands: () => Promise<CommandTable>;
}

/** Runs one CNI invocation; returns the process exit code. */
export async function runCni(io: CniIo): Promise<number> {
  let stdin = "";
  let conf: NetConf | undefined;
  let log: Logger = createLogger("warn");
  let env: Invocation | undefined;
  try {
    env = readCniEnv(io.env);
    if (env.command === "VERSION") {
      io.write(`${JSON.stringify({ cniVersion: LATEST_VERSION, supportedVersions: SUPPORTED_VERSIONS })}\n`);
      return 0;
    }
    stdin = io.readStdin();
    conf = parseNetConf(stdin);
    checkPaths(conf.ipam, io.env);
    log = createLogger(conf.ipam.logLevel, logDestination(conf.ipam, log), { cmd: env.command, network: conf.name });
    checkCommandAllowed(env.command, conf);
    const commands = conf.ipam.kubeconfig === undefined ? localCommands : await io.loadClusterCommands();
    const ctx: CommandContext = { env, conf, log, openDriver: io.openDriver };
    const outcome: CommandOutcome = await commands[env.command](ctx);
    if (outcome.result) {
      try {
        io.write(`${JSON.stringify(formatResult(conf.cniVersion, outcome.result))}\n`);
      } catch (err) {
        log.error("could not deliver the result; rolling back", { error: (err as Error).message });
        await outcome.rollback?.();
        return 1;
      }
    }
    return 0;
  } catch (err) {
    if (!stdin && env && env.command !== "VERSION") {
      try {
        stdin = io.readStdin();
      } catch {
        // stdin unreadable: the error below is what matters
      }
    }
    const e = toCniError(err);
    (e.code === Code.TryAgainLater || e.code >= 100 ? log.warn : log.error)(e.msg, {
      code: e.code,
      details: e.details || undefined,
      container: env?.containerId,
    });
    try {
      io.write(`${JSON.stringify(e.toJSON(conf?.cniVersion ?? sniffVersion(stdin) ?? LATEST_VERSION))}\n`);
    } catch {
      // nothing more can be said
    }
    return 1;
  }
}

/** What the spec requires before a command may run at all, in either mode. */
function checkCommandAllowed(command: Invocation["command"], conf: NetConf): void {
  const since = versionNeeded(conf.cniVersion, command);
  if (since)
    throw new CniError(
      Code.IncompatibleVersion,
      `config version ${conf.cniVersion} does not allow ${command}`,
      `${command} needs cniVersion ${since} or later`,
    );
  if (command === "CHECK" && conf.prevIps === undefined) throw new CniError(Code.InvalidConfig, "invalid prevResult: missing (required for CHECK)");
}
