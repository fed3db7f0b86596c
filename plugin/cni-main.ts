/**
 * The CNI boundary: read env and stdin, run one command, print exactly one
 * JSON document (result or error) on stdout, and return the exit code.
 */
import { CniError, Code } from "./cni-error.ts";
import { LATEST_VERSION, SUPPORTED_VERSIONS } from "./cni-version.ts";
import { type CniEnv, readCniEnv } from "./cni-env.ts";
import { type NetConf, parseNetConf, sniffVersion } from "./config.ts";
import { IpamError } from "./ipam-error.ts";
import { type Logger, createLogger } from "./logger.ts";
import type { OpenDriver } from "../store/driver.ts";
import { cmdAdd } from "./commands/add.ts";
import { cmdCheck } from "./commands/check.ts";
import type { CommandContext, CommandOutcome } from "./commands/context.ts";
import { cmdDel } from "./commands/del.ts";
import { cmdGc } from "./commands/gc.ts";
import { cmdStatus } from "./commands/status.ts";

export interface CniIo {
  env: Record<string, string | undefined>;
  readStdin: () => string;
  /** Writes stdout; throws if it cannot (then an ADD is rolled back). */
  write: (text: string) => void;
  openDriver: OpenDriver;
}

const COMMANDS = { ADD: cmdAdd, DEL: cmdDel, CHECK: cmdCheck, GC: cmdGc, STATUS: cmdStatus } as const;

/** Runs one CNI invocation; returns the process exit code. */
export function runCni(io: CniIo): number {
  let stdin = "";
  let conf: NetConf | undefined;
  let log: Logger = createLogger("warn");
  let env: CniEnv | undefined;
  try {
    env = readCniEnv(io.env);
    if (env.command === "VERSION") {
      io.write(JSON.stringify({ cniVersion: LATEST_VERSION, supportedVersions: SUPPORTED_VERSIONS }) + "\n");
      return 0;
    }
    stdin = io.readStdin();
    conf = parseNetConf(stdin);
    log = createLogger(conf.ipam.logLevel, conf.ipam.logFile, { cmd: env.command, network: conf.name });
    const ctx: CommandContext = { env, conf, log, openDriver: io.openDriver };
    const outcome: CommandOutcome = COMMANDS[env.command](ctx);
    if (outcome.output) {
      try {
        io.write(JSON.stringify(outcome.output) + "\n");
      } catch (err) {
        log.error("could not deliver the result; rolling back", { error: (err as Error).message });
        outcome.rollback?.();
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
    (e.code === Code.TryAgainLater || e.code >= 100 ? log.warn : log.error)(e.msg, { code: e.code, details: e.details || undefined, container: env?.containerId });
    try {
      io.write(JSON.stringify(e.toJSON(conf?.cniVersion ?? sniffVersion(stdin) ?? LATEST_VERSION)) + "\n");
    } catch {
      // nothing more can be said
    }
    return 1;
  }
}

/** Maps anything thrown inside berth to the CNI error the runtime sees. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof IpamError) {
    const code = { exhausted: Code.PoolExhausted, "no-pool": Code.NoCandidatePool, conflict: Code.AddressConflict, "lease-missing": Code.LeaseMissing }[err.kind];
    return new CniError(code, err.message, err.details, { cause: err });
  }
  const e = err as { code?: unknown; message?: string };
  const sqlite = typeof e?.code === "string" && e.code.startsWith("SQLITE_") ? e.code : undefined;
  if (sqlite === "SQLITE_BUSY" || sqlite === "SQLITE_LOCKED") {
    return new CniError(Code.TryAgainLater, `lease database busy: ${e.message}`, "another berth process held the write lock past the busy timeout", { cause: err });
  }
  if (sqlite) return new CniError(Code.StoreFailure, `lease database error ${sqlite}: ${e.message}`, "", { cause: err });
  return new CniError(Code.Internal, `internal error: ${e?.message ?? String(err)}`, (err as Error)?.stack ?? "", { cause: err });
}
