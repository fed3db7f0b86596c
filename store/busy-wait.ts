/** Waiting for the node database's write lock, which other berth processes hold in turn. */

/** How long a writer waits for the database lock before giving up (CNI code 11). */
export const BUSY_TIMEOUT_MS = 30_000;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Whether an error is SQLite saying another connection holds the lock. */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED" || (typeof code === "string" && code.startsWith("SQLITE_BUSY_"));
}

/**
 * Runs `fn`, retrying while SQLite reports the database busy, for up to
 * `timeoutMs`. SQLite's own busy handler sleeps in steps of up to 100 ms;
 * with a hundred plugin processes starting at once those sleeps, not the
 * work, made up the wall time (measured, BENCHMARKS.md). Short randomised
 * sleeps hand the lock on as soon as it is free.
 */
export function retryBusy<T>(fn: () => T, timeoutMs = BUSY_TIMEOUT_MS): T {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() >= deadline) throw err;
      Atomics.wait(sleeper, 0, 0, 0.2 + Math.random() * Math.min(5, 0.5 + attempt * 0.25));
    }
  }
}

/**
 * How long a writer may wait for the lock: a fixed time, or (a command with a
 * deadline, such as a cluster DEL) a function read at each wait, returning
 * what is left.
 */
export type BusyWait = number | (() => number);
