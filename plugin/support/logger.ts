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

/** One line per entry: time, level, message, then key=value pairs, so grep works on it. */
export function createLogger(level: LogLevel = "info", file?: string, base: Record<string, unknown> = {}): Logger {
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const all = { ...base, ...fields };
    let line = `${new Date().toISOString()} ${lvl.toUpperCase()} ${msg}`;
    for (const [k, v] of Object.entries(all)) {
      if (v !== undefined && v !== null) line += ` ${k}=${typeof v === "string" && !/\s|"/.test(v) ? v : JSON.stringify(v)}`;
    }
    line += "\n";
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
