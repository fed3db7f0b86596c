/** Leveled logging to stderr or `ipam.logFile`; never to stdout, which carries the CNI result. */
import { closeSync, constants, fstatSync, openSync, writeSync } from "node:fs";
/** Log levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * One JSON object per line: `time`, `level`, `msg`, then the fields. Values
 * often come from pod annotations and pool names that a namespace's users
 * write; JSON escaping keeps a newline or quote in them from forging a line.
 */
export function createLogger(level: LogLevel = "info", fd = 2, base: Record<string, unknown> = {}): Logger {
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const line = `${formatLine(lvl, msg, { ...base, ...fields })}\n`;
    try {
      // writeSync, not process.stderr.write: bun builds a whole stream on first use (~2 ms, measured).
      // One write per line on an O_APPEND descriptor: lines of concurrent plugin processes do not interleave.
      writeSync(fd, line);
    } catch {
      // A broken log destination must never fail a CNI command.
    }
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
  };
}

/** The line for one entry (without its newline); fields that are undefined or null are left out. */
export function formatLine(level: LogLevel, msg: string, fields: Record<string, unknown>): string {
  const entry: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined && v !== null && !(k in entry)) entry[k] = typeof v === "bigint" ? String(v) : v;
  }
  return JSON.stringify(entry);
}

/** A log file path that names something other than a regular file: what it is instead. */
export class LogFileRefused extends Error {
  constructor(
    readonly path: string,
    readonly what: string,
  ) {
    super(`${path} ${what}`);
    this.name = "LogFileRefused";
  }
}

/**
 * Opens (creating it if needed) the log file for appending and returns its
 * descriptor. Root opens a path a network configuration names, so the last
 * component is never followed (O_NOFOLLOW: a symlink planted there, e.g. by a
 * pod with /var/log mounted, would make root append to its target), and only
 * a regular file is written: a FIFO, socket, device or directory is refused
 * (O_NONBLOCK: opening a FIFO nobody reads fails at once instead of hanging
 * the runtime). Throws LogFileRefused for those; any other failure (a missing
 * directory, no space, a read-only filesystem) is thrown as the system's error.
 */
export function openLogFile(path: string): number {
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0o640);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ELOOP") throw new LogFileRefused(path, "is a symbolic link (the log file is opened without following links)");
    if (code === "EISDIR") throw new LogFileRefused(path, "is a directory, not a regular file");
    if (code === "ENXIO" || code === "ENODEV" || code === "EOPNOTSUPP") throw new LogFileRefused(path, "is not a regular file (a FIFO, socket or device)");
    throw err;
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    const kind = st.isFIFO() ? "a FIFO" : st.isCharacterDevice() || st.isBlockDevice() ? "a device" : st.isSocket() ? "a socket" : "not a file";
    throw new LogFileRefused(path, `is ${kind}, not a regular file`);
  }
  return fd;
}
