/** The operator CLI of dist/berth. */

import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cli, cni, netconf, podArgs, tempDir } from "../support/berth.ts";

const { path: dir, cleanup } = tempDir();
const db = join(dir, "berth.db");
const conf = netconf(dir);
cni({ command: "ADD", containerId: "cafe0123456789abcdef", ifname: "eth0", netns: "/x", args: podArgs("default", "test-sts-0"), stdin: conf });

test("--help explains every command", () => {
  const r = cli(["--help"]);
  assert.is(r.status, 0);
  for (const s of ["berth version", "berth inspect", "berth release", "leases", "bindings", "pools", "-o json"]) assert.ok(r.stdout.includes(s), s);
  assert.is(cli([]).stdout, r.stdout, "no arguments: help");
});

test("version", () => {
  assert.match(cli(["version"]).stdout, /^berth \d+\.\d+\.\d+ \(CNI 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0\)/);
  assert.equal(JSON.parse(cli(["version", "-o", "json"]).stdout).cniVersions, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
});

test("inspect leases, bindings and pools as tables", () => {
  const leases = cli(["inspect", "--db", db]).stdout.split("\n");
  assert.match(leases[0], /^NETWORK\s+ADDRESS\s+POOL\s+POD\s+CONTAINER\s+IFNAME\s+SINCE\s+STATE$/);
  assert.match(leases[1], /^berth-test\s+10\.6\.168\.101\s+test-ippool\s+default\/test-sts-0\s+cafe01234567\s+eth0\s+\d{4}-\S+\s+active$/);
  assert.match(cli(["inspect", "bindings", "--db", db]).stdout, /default\/test-sts-0\s+eth0\s+10\.6\.168\.101\s+test-ippool/);
  const pools = cli(["inspect", "pools", "--db", db]).stdout.split("\n");
  assert.match(pools[0], /NAME\s+SUBNET\s+ALLOCATED-IP-COUNT\s+TOTAL-IP-COUNT\s+DEFAULT/);
  assert.match(pools[1], /^berth-test\s+test-ippool\s+10\.6\.0\.0\/16\s+1\s+10\s+false\s+false$/);
});

test("inspect -o json and --network filter", () => {
  const rows = JSON.parse(cli(["inspect", "leases", "--db", db, "-o", "json"]).stdout);
  assert.is(rows.length, 1);
  assert.is(rows[0].pod_name, "test-sts-0");
  assert.equal(JSON.parse(cli(["inspect", "leases", "--db", db, "--network", "nope", "-o", "json"]).stdout), []);
});

test("inspect does not write to the database", () => {
  const before = cli(["inspect", "pools", "--db", db, "-o", "json"]).stdout;
  cli(["inspect", "leases", "--db", db]);
  assert.is(cli(["inspect", "pools", "--db", db, "-o", "json"]).stdout, before);
});

test("usage errors exit 2 with a reason; a missing database is explained", () => {
  const bad = cli(["frobnicate"]);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, 'unknown command "frobnicate"');
  assert.is(cli(["inspect", "things", "--db", db]).status, 2);
  assert.is(cli(["release", "no-slash", "--db", db]).status, 2);
  assert.is(cli(["inspect", "-o", "yaml", "--db", db]).status, 2);
  const missing = cli(["inspect", "--db", join(dir, "nope.db")]);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, "no lease database at");
});

test("check --db: a local-mode database alone; its pools' figures; a stale pending lease and a corrupt file are found", () => {
  const ok = cli(["check", "--db", db, "-o", "json"]);
  assert.is(ok.status, 0, ok.stderr);
  const report = JSON.parse(ok.stdout);
  assert.equal(report.problems, []);
  assert.equal(
    report.pools,
    [{ name: "berth-test/test-ippool", total: 10, claimed: 1, free: 9, retained: 0 }],
    "no `excluded`: a local database does not record it",
  );
  assert.match(cli(["check", "--db", db]).stdout, "no problems found");
  // A pending lease an hour old: an ADD killed long ago.
  const copy = join(dir, "stale.db");
  copyFileSync(db, copy);
  const h = new Database(copy);
  h.prepare("UPDATE leases SET state = 'pending', created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')").run();
  h.close();
  const stale = cli(["check", "--db", copy, "-o", "json"]);
  assert.is(stale.status, 1, stale.stderr);
  assert.equal(
    JSON.parse(stale.stdout).problems.map((p: { kind: string; address: string }) => `${p.kind} ${p.address}`),
    ["stale-pending-lease 10.6.168.101"],
  );
  // Damage in the middle of the file: integrity_check (or opening it) must say so, never "no problems".
  const broken = join(dir, "broken.db");
  const bytes = readFileSync(db);
  for (let i = 4096; i < Math.min(bytes.length, 12288); i++) bytes[i] = 0x5a;
  writeFileSync(broken, bytes);
  const bad = cli(["check", "--db", broken, "-o", "json"]);
  assert.is(bad.status, 1, `a damaged database is a problem found: ${bad.stderr}`);
  const [problem, ...more] = JSON.parse(bad.stdout).problems;
  assert.equal(more, []);
  assert.is(problem.kind, "database-corrupt");
  assert.match(problem.detail, "malformed");
});

test("check: usage errors and a check that cannot run exit 2 with a reason on stderr, nothing on stdout", () => {
  for (const [args, reason] of [
    [["check", "--dry-run"], "--dry-run goes with --repair"],
    [["check", "-o", "yaml"], 'unknown output format "yaml"'],
    [["check", "--node", "--db", db], "exclude each other"],
    [["check", "--db", join(dir, "nope.db")], "does not exist"],
    [["check", "extra"], "takes no arguments"],
  ] as const) {
    const r = cli([...args]);
    assert.is(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, reason);
    assert.is(r.stdout, "", `${args.join(" ")}: nothing on stdout`);
  }
  // An API server that is not there.
  const kubeconfig = join(dir, "nowhere.kubeconfig");
  writeFileSync(
    kubeconfig,
    "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', certificate-authority-data: ''}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
  );
  const r = cli(["check", "--kubeconfig", kubeconfig]);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /^berth check: /);
  assert.is(r.stdout, "");
});

test("release warns when the pod still holds a lease", () => {
  const r = cli(["release", "default/test-sts-0", "--db", db]);
  assert.is(r.status, 0);
  assert.match(r.stdout, "released binding default/test-sts-0 eth0 10.6.168.101");
  assert.match(r.stderr, "10.6.168.101 stays leased to container cafe0123456789abcdef until its CNI DEL");
});

test.after(cleanup);
test.run();
