/**
 * The one SQLite interface berth codes against. Two adapters implement it:
 * better-sqlite3 (Node, tests) and bun:sqlite (the compiled binary). They
 * smooth the real differences: a missing row is `undefined` in both, named
 * parameters are passed without their prefix, booleans bind as 0/1, `run()`
 * returns the same shape, and transactions are the same BEGIN IMMEDIATE.
 */

export type SqlValue = string | number | bigint | boolean | null;
export type SqlParams = Record<string, SqlValue | undefined>;

export interface RunResult {
  changes: number;
  lastInsertRowid: number;
}

export interface SqlStatement<Row> {
  get(params?: SqlParams): Row | undefined;
  all(params?: SqlParams): Row[];
  run(params?: SqlParams): RunResult;
}

export interface SqlDriver {
  /** Which adapter this is, for logs and tests. */
  readonly adapter: string;
  readonly path: string;
  /** Runs one or more statements without results. */
  exec(sql: string): void;
  /** A prepared statement; adapters cache them by SQL text. */
  prepare<Row = Record<string, unknown>>(sql: string): SqlStatement<Row>;
  /** Runs `fn` in a BEGIN IMMEDIATE transaction: committed if it returns, rolled back if it throws. */
  immediate<T>(fn: () => T): T;
  close(): void;
}

export interface OpenOptions {
  readonly?: boolean;
}

/** How the entry point hands its adapter to the rest of berth. */
export type OpenDriver = (path: string, options?: OpenOptions) => SqlDriver;

/** Binds booleans as 0/1 and leaves out undefined, the same for both adapters. */
export function bindable(params: SqlParams | undefined): Record<string, string | number | bigint | null> {
  const out: Record<string, string | number | bigint | null> = {};
  if (!params) return out;
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    out[k] = typeof v === "boolean" ? (v ? 1 : 0) : v;
  }
  return out;
}

/** What an adapter supplies; `makeDriver` adds what both share (statement cache, transactions). */
export interface AdapterParts {
  adapter: string;
  path: string;
  exec: (sql: string) => void;
  /** Wraps one native prepared statement in the common shape. */
  prepare: (sql: string) => SqlStatement<unknown>;
  close: () => void;
}

/** Builds a SqlDriver from an adapter's parts: statements cached by SQL text, BEGIN IMMEDIATE transactions. */
export function makeDriver(parts: AdapterParts): SqlDriver {
  const cache = new Map<string, SqlStatement<unknown>>();
  return {
    adapter: parts.adapter,
    path: parts.path,
    exec: parts.exec,
    prepare<Row>(sql: string): SqlStatement<Row> {
      let st = cache.get(sql);
      if (!st) {
        st = parts.prepare(sql);
        cache.set(sql, st);
      }
      return st as SqlStatement<Row>;
    },
    immediate: (fn) => runImmediate(parts.exec, fn),
    close: parts.close,
  };
}

/**
 * The shared BEGIN IMMEDIATE / COMMIT / ROLLBACK wrapper both adapters use.
 * A COMMIT can fail and leave the transaction open (SQLITE_BUSY, a deferred
 * foreign key, SQLITE_FULL, an I/O error): it is rolled back then too, or the
 * connection would keep the write lock and every later BEGIN on it would fail
 * with "cannot start a transaction within a transaction".
 */
export function runImmediate<T>(exec: (sql: string) => void, fn: () => T): T {
  exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    exec("COMMIT");
    return result;
  } catch (err) {
    try {
      exec("ROLLBACK");
    } catch {
      // The transaction may already be gone (SQLite rolls back itself on some errors); the original error matters more.
    }
    throw err;
  }
}
