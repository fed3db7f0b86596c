/** Where a CNI command logs: the network's `logFile`, opened safely, or stderr. */
import type { IpamConfig } from "../ipam/config.ts";
import { type LogFileRefused, type Logger, openLogFile } from "../support/logger.ts";
import { CniError, Code } from "./cni-error.ts";

/**
 * The descriptor to log to. A `logFile` that is a symlink or not a regular
 * file is invalid configuration (code 7 naming the field and the value), and
 * nothing is written through it. One that cannot be opened for another
 * reason (its directory is missing, the disk is full) must not fail the
 * command: the lines go to stderr, which the runtime logs, with a warning.
 */
export function logDestination(ipam: IpamConfig, stderrLog: Logger): number {
  if (ipam.logFile === undefined) return 2;
  try {
    return openLogFile(ipam.logFile);
  } catch (err) {
    if ((err as Error)?.name === "LogFileRefused") {
      throw new CniError(
        Code.InvalidConfig,
        `invalid ipam.logFile ${JSON.stringify(ipam.logFile)}: ${(err as LogFileRefused).what}`,
        "point it at a regular file (berth creates it when missing)",
        { cause: err },
      );
    }
    stderrLog.warn("cannot open ipam.logFile; logging to stderr", { logFile: ipam.logFile, error: (err as Error).message });
    return 2;
  }
}
