/**
 * One contract, two adapters: every test here runs against better-sqlite3
 * (under Node) and bun:sqlite (under bun). Nothing is skipped on either.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { getPriority, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { OpenDriver, SqlDriver } from "../../store/driver.ts";
import { HOLDER_NICE, HolderPriority } from "../../store/holder-priority.ts";
import { LeaseStore, type NewLease } from "../../store/lease-store.ts";
import { migrate, SCHEMA_VERSION } from "../../store/migrations.ts";
import { StoreError } from "../../store/store-error.ts";

export function driverContract(adapterName: string, open: OpenDriver): void {
  const s = suite<{ dir: string; path: string; db: SqlDriver }>(`${adapterName} contract`);

  s.before.each((ctx) => {
    ctx.dir = mkdtempSync(join(tmpdir(), "berth-contract-"));
    ctx.path = join(ctx.dir, "t.db");
    ctx.db = open(ctx.path);
    ctx.db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, flag INTEGER, n INTEGER); CREATE TABLE u (x TEXT)");
  });
  s.after.each((ctx) => {
    try {
      ctx.db.close();
    } catch {
      // already closed by the test
    }
    rmSync(ctx.dir, { recursive: true, force: true });
  });

  s("reports its adapter name", ({ db }) => {
    assert.is(db.adapter, adapterName);
  });

  s("get() of no row is undefined", ({ db }) => {
    assert.is(db.prepare("SELECT * FROM t WHERE id = :id").get({ id: 42 }), undefined);
  });

  s("named parameters bind without prefix, for :name, @name and $name", ({ db }) => {
    db.prepare("INSERT INTO t (name, n) VALUES (:name, :n)").run({ name: "a", n: 1 });
    db.prepare("INSERT INTO t (name, n) VALUES (@name, @n)").run({ name: "b", n: 2 });
    db.prepare("INSERT INTO t (name, n) VALUES ($name, $n)").run({ name: "c", n: 3 });
    assert.equal(db.prepare<{ name: string; n: number }>("SELECT name, n FROM t ORDER BY n").all(), [
      { name: "a", n: 1 },
      { name: "b", n: 2 },
      { name: "c", n: 3 },
    ]);
  });

  s("booleans bind as 1/0 and undefined parameters are left out", ({ db }) => {
    db.prepare("INSERT INTO t (name, flag) VALUES (:name, :flag)").run({ name: "yes", flag: true, unused: undefined });
    db.prepare("INSERT INTO t (name, flag) VALUES (:name, :flag)").run({ name: "no", flag: false });
    assert.equal(db.prepare("SELECT name, flag FROM t ORDER BY name").all(), [
      { name: "no", flag: 0 },
      { name: "yes", flag: 1 },
    ]);
  });

  s("run() returns changes and lastInsertRowid as numbers", ({ db }) => {
    const r = db.prepare("INSERT INTO t (name) VALUES (:name)").run({ name: "x" });
    assert.equal(r, { changes: 1, lastInsertRowid: 1 });
    db.prepare("INSERT INTO t (name) VALUES (:name)").run({ name: "y" });
    assert.is(db.prepare("UPDATE t SET n = 5").run().changes, 2);
    assert.is(db.prepare("DELETE FROM t WHERE name = :name").run({ name: "none" }).changes, 0);
  });

  s("non-reading statements give no rows from get()/all()", ({ db }) => {
    assert.equal(db.prepare("UPDATE t SET n = 1").all(), []);
  });

  s("bigint parameters bind", ({ db }) => {
    db.prepare("INSERT INTO t (name, n) VALUES ('big', :n)").run({ n: 9007199254740991n });
    assert.is(db.prepare<{ n: number }>("SELECT n FROM t").get()?.n, 9007199254740991);
  });

  s("exec runs several statements", ({ db }) => {
    db.exec("INSERT INTO u VALUES ('1'); INSERT INTO u VALUES ('2');");
    assert.is(db.prepare<{ c: number }>("SELECT count(*) AS c FROM u").get()?.c, 2);
  });

  s("prepare caches by SQL text", ({ db }) => {
    assert.is(db.prepare("SELECT 1"), db.prepare("SELECT 1"));
  });

  s("immediate commits on return and rolls back on throw", ({ db }) => {
    const v = db.immediate(() => {
      db.prepare("INSERT INTO u VALUES ('kept')").run();
      return 7;
    });
    assert.is(v, 7);
    assert.throws(
      () =>
        db.immediate(() => {
          db.prepare("INSERT INTO u VALUES ('gone')").run();
          throw new Error("boom");
        }),
      /boom/,
    );
    assert.equal(db.prepare("SELECT x FROM u").all(), [{ x: "kept" }]);
    // the connection is usable again after a rollback
    db.immediate(() => db.prepare("INSERT INTO u VALUES ('after')").run());
    assert.is(db.prepare<{ c: number }>("SELECT count(*) AS c FROM u").get()?.c, 2);
  });

  s("a COMMIT that fails is rolled back: the error comes through, nothing is written, the connection leaves the transaction", ({ db, path }) => {
    // A deferred foreign key is checked at COMMIT, which then fails and (SQLite's rule) leaves the transaction open.
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)");
    try {
      db.immediate(() => db.prepare("INSERT INTO child VALUES (42)").run());
      assert.unreachable("the COMMIT of an orphan child succeeded");
    } catch (e) {
      assert.match(String((e as { code?: string }).code), /^SQLITE_CONSTRAINT/, String(e));
    }
    assert.is(db.prepare<{ c: number }>("SELECT count(*) AS c FROM child").get()?.c, 0, "the insert was rolled back");
    // Not inside a transaction any more: a new one starts (BEGIN inside one throws), and commits.
    db.immediate(() => db.prepare("INSERT INTO u VALUES ('after a failed commit')").run());
    assert.is(db.prepare<{ c: number }>("SELECT count(*) AS c FROM u").get()?.c, 1);
    // And the write lock was given back: another connection takes it at once.
    const other = open(path);
    try {
      other.exec("PRAGMA busy_timeout = 0");
      other.immediate(() => other.prepare("INSERT INTO u VALUES ('other')").run());
    } finally {
      other.close();
    }
    assert.is(db.prepare<{ c: number }>("SELECT count(*) AS c FROM u").get()?.c, 2);
  });

  s("constraint violations throw with an SQLITE_CONSTRAINT code", ({ db }) => {
    db.prepare("INSERT INTO t (name) VALUES ('dup')").run();
    try {
      db.prepare("INSERT INTO t (name) VALUES ('dup')").run();
      assert.unreachable("duplicate accepted");
    } catch (e) {
      assert.match(String((e as { code?: string }).code), /^SQLITE_CONSTRAINT/);
    }
  });

  s("a second writer gets SQLITE_BUSY while the first holds the write lock", ({ db, path }) => {
    db.exec("PRAGMA journal_mode = WAL");
    const other = open(path);
    try {
      other.exec("PRAGMA busy_timeout = 0");
      db.immediate(() => {
        try {
          other.immediate(() => undefined);
          assert.unreachable("second writer got the lock");
        } catch (e) {
          assert.is((e as { code?: string }).code, "SQLITE_BUSY");
        }
      });
      other.immediate(() => other.prepare("INSERT INTO u VALUES ('later')").run());
    } finally {
      other.close();
    }
  });

  s("read-only connections refuse writes", ({ db, path }) => {
    db.prepare("INSERT INTO u VALUES ('r')").run();
    const ro = open(path, { readonly: true });
    try {
      assert.is(ro.prepare<{ c: number }>("SELECT count(*) AS c FROM u").get()?.c, 1);
      assert.throws(() => ro.prepare("INSERT INTO u VALUES ('w')").run());
    } finally {
      ro.close();
    }
  });

  s("migrate sets user_version once and refuses a newer schema", ({ dir }) => {
    const db = open(join(dir, "m.db"));
    try {
      migrate(db);
      assert.is(db.prepare<{ user_version: number }>("PRAGMA user_version").get()?.user_version, SCHEMA_VERSION);
      migrate(db); // idempotent
      for (const t of ["leases", "bindings", "pools"]) {
        assert.ok(db.prepare("SELECT name FROM sqlite_master WHERE name = :t").get({ t }), t);
      }
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
      assert.throws(() => migrate(db), /newer than this berth/);
    } finally {
      db.close();
    }
  });

  s("LeaseStore: the write-lock holder runs at raised priority until its commit, then gets its own back", ({ dir }) => {
    // Lowering a nice value needs root, as CNI plugins run: fail loudly rather than test nothing.
    assert.is(process.getuid?.(), 0, "this test needs root (CAP_SYS_NICE)");
    const own = getPriority(0);
    setPriority(0, 5); // as a runtime that starts plugins niced would
    const store = LeaseStore.open(open(join(dir, "prio.db")));
    try {
      const inside = store.immediate(() => getPriority(0));
      assert.is(inside, HOLDER_NICE);
      assert.is(getPriority(0), 5, "restored to the nice value it had, not to 0");
      assert.throws(() =>
        store.immediate(() => {
          throw new Error("boom");
        }),
      );
      assert.is(getPriority(0), 5, "restored after a failed transaction too");
      assert.is(
        store.immediate(() => store.immediate(() => getPriority(0))),
        HOLDER_NICE,
        "a nested transaction joins the outer one",
      );
      assert.is(getPriority(0), 5);
    } finally {
      store.close();
      setPriority(0, own);
    }
  });

  s("LeaseStore: where the OS refuses a higher priority, transactions work as before and it stops asking", ({ dir }) => {
    let asked = 0;
    const refusing = new HolderPriority({
      get: () => 0,
      set: () => {
        asked++;
        throw Object.assign(new Error("setpriority: EACCES"), { code: "EACCES" });
      },
    });
    const store = LeaseStore.open(open(join(dir, "refused.db")), undefined, refusing);
    try {
      store.immediate(() => store.db.exec("CREATE TABLE x (a)"));
      store.immediate(() => store.db.exec("INSERT INTO x VALUES (1)"));
      assert.is(store.db.prepare<{ n: number }>("SELECT count(*) AS n FROM x").get()?.n, 1);
      assert.is(asked, 1, "asked once, then no more");
    } finally {
      store.close();
    }
  });

  s("LeaseStore: WAL, leases, bindings, usage, GC", ({ dir }) => {
    const store = LeaseStore.open(open(join(dir, "berth.db")));
    try {
      assert.is(store.db.prepare<{ journal_mode: string }>("PRAGMA journal_mode").get()?.journal_mode, "wal");
      const lease = (address: string, cid: string, pod?: string): NewLease => ({
        network: "n",
        address,
        family: 4,
        pool: "p",
        container_id: cid,
        ifname: "eth0",
        pod_namespace: pod ? "default" : null,
        pod_name: pod ?? null,
        pod_uid: null,
      });
      store.addLease(lease("10.0.0.1", "c1", "sts-0"));
      store.addLease(lease("10.0.0.2", "c2"));
      assert.throws(() => store.addLease(lease("10.0.0.1", "c3")), "one address, one lease");
      store.addLease({ ...lease("10.0.0.1", "c9"), network: "other" }); // networks are separate
      store.bindings.put({ network: "n", pod_namespace: "default", pod_name: "sts-0", ifname: "eth0", family: 4, address: "10.0.0.1", pool: "p" });
      store.bindings.put({ network: "n", pod_namespace: "default", pod_name: "sts-1", ifname: "eth0", family: 4, address: "10.0.0.3", pool: "p" });
      assert.ok(store.bindings.isTaken("n", "10.0.0.3"), "a binding reserves its address");
      assert.not.ok(store.bindings.isTaken("n", "10.0.0.4"));
      assert.is(store.bindings.poolUsage("n", "p"), 3, "leased ∪ bound, each address once");
      assert.is(store.bindings.get("n", "default", "sts-0", "eth0", 4)?.address, "10.0.0.1");
      assert.is(store.bindings.get("n", "default", "sts-0", "eth0", 6), undefined);

      const released = store.releaseAttachment("n", "c1", "eth0");
      assert.equal(
        released.map((l) => l.address),
        ["10.0.0.1"],
      );
      assert.equal(store.releaseAttachment("n", "c1", "eth0"), [], "idempotent");
      assert.ok(store.bindings.isTaken("n", "10.0.0.1"), "binding outlives the lease");

      const gone = store.collectGarbage("n", (cid) => cid === "keep");
      assert.equal(
        gone.map((l) => l.container_id),
        ["c2"],
      );
      assert.is(store.listLeases("other").length, 1, "GC touches only its network");

      assert.equal(
        store.bindings.releasePod("default", "sts-0").map((b) => b.address),
        ["10.0.0.1"],
      );
      assert.not.ok(store.bindings.isTaken("n", "10.0.0.1"));

      store.bindings.syncPools("n", [
        { network: "n", name: "p", family: 4, subnet: "10.0.0.0/24", ranges: "10.0.0.1-10.0.0.9", total: 9, gateway: null, is_default: true, disabled: false },
      ]);
      store.bindings.setCursor("n", "p", "10.0.0.3");
      assert.is(store.bindings.cursor("n", "p"), "10.0.0.3");
      const pools = store.bindings.listPools("n");
      assert.is(pools.length, 1);
      assert.is(pools[0].allocated, 1);
      assert.is(pools[0].is_default, 1);
      store.bindings.syncPools("n", []);
      assert.is(store.bindings.listPools("n").length, 0, "pools no longer configured are forgotten");
    } finally {
      store.close();
    }
  });

  s("LeaseStore.open refuses a database that stays outside WAL, naming the file and the mode; inspect stays lenient", () => {
    // An in-memory database cannot be WAL: SQLite answers the switch with the mode it kept ("memory").
    const mem = open(":memory:");
    try {
      LeaseStore.open(mem);
      assert.unreachable("a database outside WAL was accepted");
    } catch (e) {
      assert.instance(e, StoreError);
      assert.is((e as StoreError).problem, "journal-mode");
      assert.match((e as Error).message, 'lease database :memory: is in journal mode "memory"');
      assert.match((e as Error).message, "cannot be switched to WAL");
    } finally {
      mem.close();
    }
    const other = open(":memory:");
    try {
      migrate(other);
      assert.equal(LeaseStore.inspect(other).listLeases(), [], "reading (berth inspect) does not ask for WAL");
    } finally {
      other.close();
    }
  });

  s("LeaseStore: a busy wait given as a function (what is left of a command's budget) is read at each wait", ({ dir }) => {
    const file = join(dir, "budget.db");
    LeaseStore.open(open(file)).close();
    const other = open(file);
    let asked = 0;
    const store = LeaseStore.open(open(file), () => {
      asked++;
      return 0; // nothing left: one try, no wait
    });
    try {
      other.exec("BEGIN IMMEDIATE");
      const before = asked;
      try {
        store.immediate(() => store.hints.set("p", "10.0.0.1", true));
        assert.unreachable("took a lock another connection holds");
      } catch (e) {
        assert.is((e as { code?: string }).code, "SQLITE_BUSY");
      }
      assert.is(asked, before + 1, "asked how long it may wait");
      other.exec("ROLLBACK");
      store.immediate(() => store.hints.set("p", "10.0.0.1", true));
      assert.ok(store.hints.hintedOrLeased("n", "p", "10.0.0.1"));
    } finally {
      other.close();
      store.close();
    }
  });

  s("LeaseStore.cacheWrite commits without fsync and leaves synchronous FULL", ({ dir }) => {
    const file = join(dir, "cache.db");
    const store = LeaseStore.open(open(file));
    const other = open(file, { readonly: true });
    const sync = () => store.db.prepare<{ synchronous: number }>("PRAGMA synchronous").get()?.synchronous;
    try {
      assert.is(sync(), 2, "FULL after open");
      const inside = store.cacheWrite(() => {
        store.hints.set("p", "10.0.0.1", true);
        return sync();
      });
      assert.is(inside, 1, "NORMAL while the cache write commits");
      assert.is(sync(), 2, "FULL again afterwards");
      assert.ok(other.prepare("SELECT 1 FROM claim_hints WHERE address = '10.0.0.1'").get(), "committed: another connection sees it");
      assert.throws(
        () =>
          store.cacheWrite(() => {
            store.hints.set("p", "10.0.0.2", true);
            throw new Error("boom");
          }),
        /boom/,
      );
      assert.is(sync(), 2, "FULL again after a rollback");
      assert.not.ok(store.hints.hintedOrLeased("n", "p", "10.0.0.2"), "rolled back");
      // Inside a durable transaction it joins it (the setting cannot change there).
      store.immediate(() => store.cacheWrite(() => store.hints.set("p", "10.0.0.3", true)));
      assert.ok(store.hints.hintedOrLeased("n", "p", "10.0.0.3"));
      assert.is(sync(), 2);
    } finally {
      other.close();
      store.close();
    }
  });

  s("LeaseStore.hintedOrLeased: a hint or a lease of this network marks an address", ({ dir }) => {
    const store = LeaseStore.open(open(join(dir, "hl.db")));
    try {
      const lease: NewLease = {
        network: "n",
        address: "10.0.0.5",
        family: 4,
        pool: "p",
        container_id: "c",
        ifname: "eth0",
        pod_namespace: null,
        pod_name: null,
        pod_uid: null,
        state: "pending",
      };
      assert.not.ok(store.hints.hintedOrLeased("n", "p", "10.0.0.5"));
      const id = store.addLease(lease);
      assert.ok(store.hints.hintedOrLeased("n", "p", "10.0.0.5"), "a pending lease, no hint");
      assert.not.ok(store.hints.hintedOrLeased("other", "p", "10.0.0.5"), "another network's lease does not count");
      store.deleteLease(id);
      store.hints.set("p", "10.0.0.5", true);
      assert.ok(store.hints.hintedOrLeased("n", "p", "10.0.0.5"), "a hint, no lease");
      assert.not.ok(store.hints.hintedOrLeased("n", "q", "10.0.0.5"), "hints are per pool");
    } finally {
      store.close();
    }
  });

  s.run();
}
