/** Leveled logging to stderr or `ipam.logFile`; never to stdout, which carries the CNI result. */
import { appendFileSync, writeSync } from "node:fs";
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
export function createLogger(level: LogLevel = "info", file?: string, base: Record<string, unknown> = {}): Logger {
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const line = `${formatLine(lvl, msg, { ...base, ...fields })}\n`;
    try {
      // writeSync, not process.stderr.write: bun builds a whole stream on first use (~2 ms, measured).
      if (file) appendFileSync(file, line);
      else writeSync(2, line);
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
