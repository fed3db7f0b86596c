/**
 * Opening the node's lease database for a CNI command: what the runtime is
 * told when it cannot be used as berth needs it.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { toCniError } from "../../../plugin/cni/to-cni-error.ts";
import { openBetterSqlite3 } from "../../../store/better-sqlite3-driver.ts";
import { openLeaseDb } from "../../../store/open-lease-db.ts";

test("a database that stays outside WAL is refused with code 5, naming the file and the mode it got", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-open-store-"));
  try {
    const place = { dataDir: dir, dbPath: join(dir, "berth.db") };
    // The driver the plugin is handed opens a database that cannot be WAL (SQLite keeps "memory" for it).
    let err: unknown;
    try {
      openLeaseDb(place, () => openBetterSqlite3(":memory:"))?.close();
    } catch (e) {
      err = e;
    }
    assert.ok(err, "the store was opened outside WAL");
    const cni = toCniError(err);
    assert.is(cni.code, 5);
    assert.match(cni.msg, 'is in journal mode "memory" and cannot be switched to WAL');
    assert.match(cni.details, `ipam.dataDir ${dir}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
