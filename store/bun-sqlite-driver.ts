/** The SqlDriver adapter for the compiled binary: bun:sqlite. */
import { Database } from "bun:sqlite";
import { bindable, makeDriver, type OpenOptions, type SqlDriver, type SqlParams } from "./driver.ts";

/** Opens `path` with bun:sqlite. `strict` lets named parameters be passed without their prefix, as better-sqlite3 does. */
export function openBunSqlite(path: string, options: OpenOptions = {}): SqlDriver {
  const db = options.readonly ? new Database(path, { readonly: true, strict: true }) : new Database(path, { create: true, readwrite: true, strict: true });
  return makeDriver({
    adapter: "bun:sqlite",
    path,
    exec: (sql) => void db.run(sql),
    prepare: (sql) => {
      const raw = db.prepare(sql);
      return {
        // bun returns null for "no row"; better-sqlite3 returns undefined.
        get: (p?: SqlParams) => raw.get(bindable(p) as never) ?? undefined,
        all: (p?: SqlParams) => raw.all(bindable(p) as never),
        run: (p?: SqlParams) => {
          const r = raw.run(bindable(p) as never);
          return { changes: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
        },
      };
    },
    close: () => db.close(),
  });
}
