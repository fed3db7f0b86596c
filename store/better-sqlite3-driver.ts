/** The SqlDriver adapter for Node: better-sqlite3 12.x. */
import Database from "better-sqlite3";
import { type OpenOptions, type SqlDriver, type SqlParams, type SqlStatement, bindable, runImmediate } from "./driver.ts";

/** Opens `path` with better-sqlite3. */
export function openBetterSqlite3(path: string, options: OpenOptions = {}): SqlDriver {
  const db = new Database(path, options.readonly ? { readonly: true, fileMustExist: true } : {});
  const cache = new Map<string, SqlStatement<unknown>>();
  const exec = (sql: string) => void db.exec(sql);
  return {
    adapter: "better-sqlite3",
    path,
    exec,
    prepare<Row>(sql: string): SqlStatement<Row> {
      let st = cache.get(sql);
      if (!st) {
        const raw = db.prepare(sql);
        const returnsRows = raw.reader;
        st = {
          get: (p?: SqlParams) => (returnsRows ? (raw.get(bindable(p)) as Row | undefined) : undefined),
          all: (p?: SqlParams) => (returnsRows ? (raw.all(bindable(p)) as Row[]) : []),
          run: (p?: SqlParams) => {
            const r = raw.run(bindable(p));
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
