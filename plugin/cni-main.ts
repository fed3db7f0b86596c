/**
 * The CNI boundary: read env and stdin, run one command, print exactly one
 * JSON document (result or error) on stdout, and return the exit code.
 */
import { CniError, Code } from "./cni-error.ts";
import { LATEST_VERSION, SUPPORTED_VERSIONS } from "./cni-version.ts";
import { type CniEnv, readCniEnv } from "./cni-env.ts";
import { type NetConf, parseNetConf, sniffVersion } from "./config.ts";
import type { IpamError } from "./ipam-error.ts";
import type { KubeUnreachableError } from "./cluster/kube-api.ts";
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

type Command = (ctx: CommandContext) => CommandOutcome | Promise<CommandOutcome>;
const LOCAL: Record<"ADD" | "DEL" | "CHECK" | "GC" | "STATUS", Command> = { ADD: cmdAdd, DEL: cmdDel, CHECK: cmdCheck, GC: cmdGc, STATUS: cmdStatus };

/**
 * Cluster mode's commands live in a second entry point of the binary (see the
 * build script), imported by a specifier the bundler cannot fold: bundled
 * into the main entry, the Kubernetes client cost every local-mode start
 * ~5 ms even unevaluated (measured, BENCHMARKS.md).
 */
const CLUSTER_MODULE = ["./cluster", "cluster-commands.ts"].join("/");

async function commandsFor(conf: NetConf): Promise<typeof LOCAL> {
  if (conf.ipam.kubeconfig === undefined) return LOCAL;
  return ((await import(CLUSTER_MODULE)) as { clusterCommands: typeof LOCAL }).clusterCommands;
}

/** Runs one CNI invocation; returns the process exit code. */
export async function runCni(io: CniIo): Promise<number> {
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
    const outcome: CommandOutcome = await (await commandsFor(conf))[env.command](ctx);
    if (outcome.output) {
      try {
        io.write(JSON.stringify(outcome.output) + "\n");
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
    (e.code === Code.TryAgainLater || e.code >= 100 ? log.warn : log.error)(e.msg, { code: e.code, details: e.details || undefined, container: env?.containerId });
    try {
      io.write(JSON.stringify(e.toJSON(conf?.cniVersion ?? sniffVersion(stdin) ?? LATEST_VERSION)) + "\n");
    } catch {
      // nothing more can be said
    }
    return 1;
  }
}

/**
 * Maps anything thrown inside berth to the CNI error the runtime sees. Errors
 * are recognised by name, not instanceof: the cluster entry point has its own
 * copies of these classes.
 */
export function toCniError(err: unknown): CniError {
  const named = (n: string) => (err as Error | undefined)?.name === n;
  if (err instanceof CniError) return err;
  if (named("CniError")) {
    const e = err as { code: number; msg: string; details?: string };
    return new CniError(e.code, e.msg, e.details ?? "", { cause: err });
  }
  if (named("IpamError")) {
    const err2 = err as IpamError;
    const code = {
      exhausted: Code.PoolExhausted, "no-pool": Code.NoCandidatePool, conflict: Code.AddressConflict, "lease-missing": Code.LeaseMissing,
      "not-found": Code.NotFound, "bad-annotation": Code.BadAnnotation, "bad-pool": Code.BadPool, refused: Code.Refused,
    }[err2.kind];
    return new CniError(code, err2.message, err2.details, { cause: err });
  }
  if (named("KubeUnreachableError")) return new CniError(Code.TryAgainLater, (err as KubeUnreachableError).message, `API server ${(err as KubeUnreachableError).server}`, { cause: err });
  if (named("KubeRequestError")) return new CniError(Code.Refused, `API server refused: ${(err as Error).message}`, "", { cause: err });
  if (named("KubeConflictError")) return new CniError(Code.TryAgainLater, `lost a race on the API server: ${(err as Error).message}`, "", { cause: err });
  const e = err as { code?: unknown; message?: string };
  const sqlite = typeof e?.code === "string" && e.code.startsWith("SQLITE_") ? e.code : undefined;
  if (sqlite === "SQLITE_BUSY" || sqlite === "SQLITE_LOCKED") {
    return new CniError(Code.TryAgainLater, `lease database busy: ${e.message}`, "another berth process held the write lock past the busy timeout", { cause: err });
  }
  if (sqlite) return new CniError(Code.StoreFailure, `lease database error ${sqlite}: ${e.message}`, "", { cause: err });
  return new CniError(Code.Internal, `internal error: ${e?.message ?? String(err)}`, (err as Error)?.stack ?? "", { cause: err });
}
