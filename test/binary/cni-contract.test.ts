/** The CNI contract of dist/berth, command by command, as a runtime sees it. */

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { cni, dbSnapshot, netconf, podArgs, sql, tempDir } from "../support/berth.ts";
import { logEntries, logged } from "../support/log-lines.ts";

const VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const t = suite<{ dir: string; db: string; cleanup: () => void }>("cni contract");
t.before.each((ctx) => {
  const d = tempDir();
  ctx.dir = d.path;
  ctx.db = join(d.path, "berth.db");
  ctx.cleanup = d.cleanup;
});
t.after.each((ctx) => ctx.cleanup());

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const add = (dir: string, cid: string, extra: { conf?: object; args?: string; ifname?: string } = {}) =>
  cni({ command: "ADD", containerId: cid, ifname: extra.ifname ?? "eth0", netns: "/var/run/netns/x", args: extra.args, stdin: extra.conf ?? netconf(dir) });
const del = (dir: string, cid: string, conf?: object) => cni({ command: "DEL", containerId: cid, ifname: "eth0", stdin: conf ?? netconf(dir) });

t("VERSION lists every supported version and needs no config", () => {
  const r = cni({ command: "VERSION", stdin: "" });
  assert.is(r.status, 0);
  assert.equal(r.json, { cniVersion: "1.1.0", supportedVersions: VERSIONS });
});

for (const v of VERSIONS) {
  t(`ADD result has the shape of cniVersion ${v}`, ({ dir }) => {
    const r = add(dir, "c1", { conf: netconf(dir, {}, { cniVersion: v }) });
    assert.is(r.status, 0, r.stdout + r.stderr);
    const legacy = v.startsWith("0.");
    const ip: Record<string, string> = { address: "10.6.168.101/16", gateway: "10.6.0.1" };
    assert.equal(r.json, { cniVersion: v, ips: [legacy ? { version: "4", ...ip } : ip], routes: [], dns: {} });
  });
}

t("a repeated ADD returns the same lease, not a second address", ({ dir, db }) => {
  const a = add(dir, "c1");
  const b = add(dir, "c1");
  assert.equal(b.json, a.json);
  assert.is(sql(db, "SELECT * FROM leases").length, 1);
  const other = add(dir, "c1", { ifname: "net1" });
  assert.is(other.json.ips[0].address, "10.6.168.102/16", "another interface of the same container is another attachment");
});

t("routes and gateway come from the pool", ({ dir }) => {
  const conf = netconf(dir, {
    pools: [
      {
        name: "test-ippool",
        subnet: "10.6.0.0/16",
        ips: ["10.6.168.101"],
        gateway: "10.6.0.1",
        routes: [{ dst: "0.0.0.0/0", gw: "10.6.0.1" }, { dst: "192.168.0.0/16" }],
      },
    ],
  });
  const r = add(dir, "c1", { conf });
  assert.equal(r.json.routes, [{ dst: "0.0.0.0/0", gw: "10.6.0.1" }, { dst: "192.168.0.0/16" }]);
});

t("DEL releases; DEL of an unknown or deleted attachment succeeds; DEL without a database succeeds", ({ dir, db }) => {
  assert.is(del(dir, "never").status, 0, "no database yet");
  assert.is(dbSnapshot(db), "(no database)", "DEL does not create a database");
  add(dir, "c1");
  const r = del(dir, "c1");
  assert.is(r.status, 0);
  assert.is(r.stdout, "", "DEL prints nothing");
  assert.is(sql(db, "SELECT * FROM leases").length, 0);
  assert.is(del(dir, "c1").status, 0, "second DEL");
  assert.is(del(dir, "unknown").status, 0);
});

t("DEL without CNI_NETNS is accepted (the runtime may have lost the namespace)", ({ dir, db }) => {
  add(dir, "c1");
  const r = cni({ command: "DEL", containerId: "c1", ifname: "eth0", stdin: netconf(dir) });
  assert.is(r.status, 0);
  assert.is(sql(db, "SELECT * FROM leases").length, 0);
});

t("CHECK passes while the lease exists and fails clearly once it is gone", ({ dir }) => {
  const added = add(dir, "c1").json;
  const conf = { ...netconf(dir), prevResult: added };
  const ok = cni({ command: "CHECK", containerId: "c1", ifname: "eth0", netns: "/x", stdin: conf });
  assert.is(ok.status, 0, ok.stdout);
  assert.is(ok.stdout, "");
  del(dir, "c1");
  const gone = cni({ command: "CHECK", containerId: "c1", ifname: "eth0", netns: "/x", stdin: conf });
  assert.is(gone.status, 1);
  assert.is(gone.json.code, 103);
  assert.match(gone.json.msg, "lease for 10.6.168.101 is gone");
  const noPrev = cni({ command: "CHECK", containerId: "c1", ifname: "eth0", netns: "/x", stdin: netconf(dir) });
  assert.is(noPrev.json.code, 7);
  assert.match(noPrev.json.msg, "prevResult");
  const old = cni({ command: "CHECK", containerId: "c1", ifname: "eth0", netns: "/x", stdin: { ...conf, cniVersion: "0.3.1" } });
  assert.is(old.json.code, 1);
});

t("GC releases leases not listed; missing key does nothing; null and [] mean none are valid", async ({ dir, db }) => {
  // An ADD's budget (timeoutSeconds) of 0.3 s: leases older than that cannot belong to an ADD still running.
  const gcConf = (extra: object) => ({ ...netconf(dir, { timeoutSeconds: 0.3 }, { cniVersion: "1.1.0" }), ...extra });
  const gc = (extra: object) => cni({ command: "GC", stdin: gcConf(extra) });
  for (const c of ["c1", "c2", "c3"]) add(dir, c);
  const leases = () => sql<{ container_id: string }>(db, "SELECT container_id FROM leases ORDER BY container_id").map((r) => r.container_id);
  await sleep(400);

  assert.is(gc({}).status, 0);
  assert.equal(leases(), ["c1", "c2", "c3"], "no list: nothing released");

  const r = gc({
    "cni.dev/valid-attachments": [
      { containerID: "c1", ifname: "eth0" },
      { containerID: "c3", ifname: "eth0" },
    ],
  });
  assert.is(r.status, 0);
  assert.is(r.stdout, "");
  assert.equal(leases(), ["c1", "c3"]);

  assert.is(gc({ "cni.dev/attachments": [{ containerID: "c3", ifname: "eth0" }] }).status, 0);
  assert.equal(leases(), ["c3"], "the older key is honoured");

  assert.is(gc({ "cni.dev/valid-attachments": null }).status, 0);
  assert.equal(leases(), []);
  add(dir, "c4");
  await sleep(400);
  assert.is(gc({ "cni.dev/valid-attachments": [] }).status, 0);
  assert.equal(leases(), []);

  const old = cni({ command: "GC", stdin: { ...netconf(dir), "cni.dev/valid-attachments": [] } });
  assert.is(old.json.code, 1, "GC needs 1.1.0");
});

t("GC keeps other networks' leases", async ({ dir, db }) => {
  add(dir, "c1");
  add(dir, "c2", { conf: netconf(dir, {}, { name: "other-net" }) });
  await sleep(400);
  cni({ command: "GC", stdin: { ...netconf(dir, { timeoutSeconds: 0.3 }, { cniVersion: "1.1.0" }), "cni.dev/valid-attachments": [] } });
  assert.equal(sql(db, "SELECT network FROM leases"), [{ network: "other-net" }]);
});

t("GC never frees a lease younger than an ADD's budget: it may belong to an ADD still running", async ({ dir, db }) => {
  const gc = () => cni({ command: "GC", stdin: { ...netconf(dir, { timeoutSeconds: 1 }, { cniVersion: "1.1.0" }), "cni.dev/valid-attachments": [] } });
  add(dir, "in-flight");
  assert.is(gc().status, 0);
  assert.equal(sql(db, "SELECT container_id FROM leases"), [{ container_id: "in-flight" }], "kept: created within timeoutSeconds");
  await sleep(1100);
  assert.is(gc().status, 0);
  assert.equal(sql(db, "SELECT container_id FROM leases"), [], "released once older than timeoutSeconds");
});

t("STATUS: ready, then code 50 when every pool is exhausted or the database is unwritable", ({ dir }) => {
  const conf = netconf(dir, { pools: [{ name: "test-ippool", subnet: "10.6.0.0/16", ips: ["10.6.168.101-10.6.168.102"] }] }, { cniVersion: "1.1.0" });
  const status = (c: object) => cni({ command: "STATUS", stdin: c });
  const ready = status(conf);
  assert.is(ready.status, 0, ready.stdout);
  assert.is(ready.stdout, "");
  add(dir, "c1", { conf });
  add(dir, "c2", { conf });
  const full = status(conf);
  assert.is(full.status, 1);
  assert.is(full.json.code, 50);
  assert.match(full.json.msg, "all IPv4 pools exhausted: test-ippool (2 of 2 in use)");
  const blocked = status({ ...conf, ipam: { ...conf.ipam, dataDir: join(dir, "berth.db", "sub") } });
  assert.is(blocked.json.code, 50);
  assert.match(blocked.json.msg, "cannot be created");
  assert.match(blocked.json.msg, "is not a directory");
  const disabled = status({ ...conf, ipam: { ...conf.ipam, pools: [{ ...conf.ipam.pools[0], disable: true }] } });
  assert.is(disabled.json.code, 50);
  assert.match(disabled.json.msg, "test-ippool disabled");
  assert.is(status({ ...conf, cniVersion: "1.0.0" }).json.code, 1, "STATUS needs 1.1.0");
});

t("STATUS reads, never writes: it answers at once while another process holds the write lock, and creates no database", ({ dir, db }) => {
  const conf = netconf(dir, {}, { cniVersion: "1.1.0" });
  const fresh = { ...conf, ipam: { ...conf.ipam, dataDir: join(dir, "never", "allocated") } };
  const none = cni({ command: "STATUS", stdin: fresh });
  assert.is(none.status, 0, none.stdout);
  assert.not.ok(existsSync(join(dir, "never")), "a node that never allocated is ready, and STATUS creates nothing");
  add(dir, "c1");
  const holder = new Database(db);
  try {
    holder.exec("BEGIN IMMEDIATE"); // an ADD or DEL committing
    const r = cni({ command: "STATUS", stdin: conf });
    assert.is(r.status, 0, `STATUS waited for the write lock or failed: ${r.stdout}`);
    holder.exec("ROLLBACK");
  } finally {
    holder.close();
  }
  writeFileSync(db, "not a database ".repeat(100));
  const broken = cni({ command: "STATUS", stdin: conf });
  assert.is(broken.json?.code, 50, broken.stdout);
  assert.match(broken.json.msg, `lease database ${db} is unreadable`);
});

t("logs go to ipam.logFile, never to stdout", ({ dir }) => {
  const logFile = join(dir, "berth.log");
  const r = add(dir, "c1", { conf: netconf(dir, { logFile, logLevel: "debug" }), args: podArgs("default", "test-sts-0") });
  assert.is(r.status, 0);
  assert.is(r.stderr, "");
  const log = readFileSync(logFile, "utf8");
  assert.is(logged(log, "address assigned", { level: "info", address: "10.6.168.101", pod: "default/test-sts-0" }).length, 1, log);
  cni({ command: "ADD", containerId: "bare", ifname: "eth0", netns: "/x", stdin: netconf(dir, { logFile }) });
  cni({ command: "DEL", containerId: "bare", ifname: "eth0", stdin: netconf(dir, { logFile }) });
  const lines = logEntries(readFileSync(logFile, "utf8")).filter((e) => e.container === "bare");
  assert.is(lines.length, 2, "one line for the assignment, one for the release");
  for (const l of lines)
    assert.ok(
      Object.values(l).every((v) => v !== null && v !== undefined),
      `absent fields are left out: ${JSON.stringify(l)}`,
    );
});

t.run();
