/** berth's log lines: one JSON object each (time, level, msg, then fields). */

/** One parsed log line. */
export interface LogEntry {
  time: string;
  level: "debug" | "info" | "warn" | "error";
  msg: string;
  [field: string]: unknown;
}

/** Every line of `text` parsed; throws naming the first line that is not one JSON object of berth's shape. */
export function logEntries(text: string): LogEntry[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((line, i) => {
      let e: LogEntry;
      try {
        e = JSON.parse(line) as LogEntry;
      } catch {
        throw new Error(`log line ${i + 1} is not JSON: ${line.slice(0, 300)}`);
      }
      if (typeof e !== "object" || e === null || typeof e.time !== "string" || typeof e.level !== "string" || typeof e.msg !== "string") {
        throw new Error(`log line ${i + 1} lacks time, level or msg: ${line.slice(0, 300)}`);
      }
      return e;
    });
}

/** The entries with this message whose fields include `fields` (compared as strings). */
export function logged(text: string, msg: string, fields: Record<string, unknown> = {}): LogEntry[] {
  return logEntries(text).filter((e) => e.msg === msg && Object.entries(fields).every(([k, v]) => String(e[k]) === String(v)));
}
