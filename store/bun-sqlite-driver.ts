/** The SqlDriver adapter for the compiled binary: bun:sqlite. */
import { Database } from "bun:sqlite";
import { type OpenOptions, type SqlDriver, type SqlParams, type SqlStatement, bindable, runImmediate } from "./driver.ts";

/** Opens `path` with bun:sqlite. `strict` lets named parameters be passed without their prefix, as better-sqlite3 does. */
export function openBunSqlite(path: string, options: OpenOptions = {}): SqlDriver {
  const db = options.readonly
    ? new Database(path, { readonly: true, strict: true })
    : new Database(path, { create: true, readwrite: true, strict: true });
  const cache = new Map<string, SqlStatement<unknown>>();
  const exec = (sql: string) => void db.run(sql);
  return {
    adapter: "bun:sqlite",
    path,
    exec,
    prepare<Row>(sql: string): SqlStatement<Row> {
      let st = cache.get(sql);
      if (!st) {
        const raw = db.prepare(sql);
        st = {
          // bun returns null for "no row"; better-sqlite3 returns undefined.
          get: (p?: SqlParams) => (raw.get(bindable(p) as never) ?? undefined) as Row | undefined,
          all: (p?: SqlParams) => raw.all(bindable(p) as never) as Row[],
          run: (p?: SqlParams) => {
            const r = raw.run(bindable(p) as never);
            return { changes: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
          },
        };
        cache.set(sql, st);
      }
      return st as SqlStatement<Row>;
    },
    immediate: (fn) => runImmediate(exec, fn),
    close: () => db.close(),
  };
}
