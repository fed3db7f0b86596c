/** The SqlDriver adapter for Node: better-sqlite3 12.x. */
import Database from "better-sqlite3";
import { bindable, makeDriver, type OpenOptions, type SqlDriver, type SqlParams } from "./driver.ts";

/** Opens `path` with better-sqlite3. */
export function openBetterSqlite3(path: string, options: OpenOptions = {}): SqlDriver {
  const db = new Database(path, options.readonly ? { readonly: true, fileMustExist: true } : {});
  return makeDriver({
    adapter: "better-sqlite3",
    path,
    exec: (sql) => void db.exec(sql),
    prepare: (sql) => {
      const raw = db.prepare(sql);
      // better-sqlite3 throws on get()/all() of a statement that returns no rows; bun does not.
      const reads = raw.reader;
      return {
        get: (p?: SqlParams) => (reads ? raw.get(bindable(p)) : undefined),
        all: (p?: SqlParams) => (reads ? raw.all(bindable(p)) : []),
        run: (p?: SqlParams) => {
          const r = raw.run(bindable(p));
          return { changes: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
        },
      };
    },
    close: () => db.close(),
  });
}
