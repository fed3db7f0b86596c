/** StatefulSet stickiness in local mode, through the compiled binary. */

import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { cli, cni, netconf, podArgs, sql, tempDir } from "../support/berth.ts";

const t = suite<{ dir: string; db: string; cleanup: () => void }>("stickiness");
t.before.each((ctx) => {
  const d = tempDir();
  Object.assign(ctx, { dir: d.path, db: join(d.path, "berth.db"), cleanup: d.cleanup });
});
t.after.each((ctx) => ctx.cleanup());

let seq = 0;
/** Starts a pod sandbox: a new container ID and UID each time, as a recreated pod gets. */
function start(conf: object, pod: string, ns = "default"): { cid: string; ips: string[]; json: any } {
  const cid = `sandbox-${++seq}-${pod}`;
  const r = cni({ command: "ADD", containerId: cid, ifname: "eth0", netns: `/var/run/netns/${cid}`, args: podArgs(ns, pod), stdin: conf });
  assert.is(r.status, 0, `ADD ${pod}: ${r.stdout}`);
  return { cid, ips: r.json.ips.map((i: { address: string }) => i.address), json: r.json };
}
function stop(conf: object, pod: string, cid: string, ns = "default") {
  const r = cni({ command: "DEL", containerId: cid, ifname: "eth0", args: podArgs(ns, pod), stdin: conf });
  assert.is(r.status, 0, `DEL ${pod}: ${r.stdout}`);
}

t("the seed scenario: addresses survive delete/recreate and scale-up adds one", ({ dir, db }) => {
  const conf = netconf(dir);
  const first = { "test-sts-0": start(conf, "test-sts-0"), "test-sts-1": start(conf, "test-sts-1") };
  assert.is.not(first["test-sts-0"].ips[0], first["test-sts-1"].ips[0]);
  for (const [pod, s] of Object.entries(first)) stop(conf, pod, s.cid);
  assert.is(sql(db, "SELECT * FROM leases").length, 0, "no lease after DEL");
  assert.is(sql(db, "SELECT * FROM bindings").length, 2, "bindings stay");

  const second = { "test-sts-0": start(conf, "test-sts-0"), "test-sts-1": start(conf, "test-sts-1") };
  for (const pod of Object.keys(first) as (keyof typeof first)[]) assert.equal(second[pod].ips, first[pod].ips, pod);

  const third = start(conf, "test-sts-2");
  assert.not.ok(
    Object.values(first).some((s) => s.ips[0] === third.ips[0]),
    "a new ordinal gets a new address",
  );
  const all = { ...second, "test-sts-2": third };
  for (const [pod, s] of Object.entries(all)) stop(conf, pod, s.cid);
  for (const [pod, s] of Object.entries(all)) assert.equal(start(conf, pod).ips, s.ips, `${pod} after recreate`);
  const pools = JSON.parse(cli(["inspect", "pools", "--db", db, "-o", "json"]).stdout);
  assert.is(pools[0].allocated, 3);
  assert.is(pools[0].total, 10);
});

t("a recreated StatefulSet pod whose old sandbox was never deleted takes its address over", ({ dir, db }) => {
  const conf = netconf(dir);
  const a = start(conf, "test-sts-0");
  const b = start(conf, "test-sts-0"); // no DEL for a: the node lost it
  assert.equal(b.ips, a.ips);
  assert.equal(sql(db, "SELECT container_id FROM leases"), [{ container_id: b.cid }], "one lease, held by the new sandbox");
});

t("non-StatefulSet pods free their address on DEL", ({ dir, db }) => {
  const conf = netconf(dir);
  const web = start(conf, "web-7d9f5c6b8-xk2pq");
  assert.is(sql(db, "SELECT * FROM bindings").length, 0);
  stop(conf, "web-7d9f5c6b8-xk2pq", web.cid);
  assert.is(sql(db, "SELECT * FROM leases").length + sql(db, "SELECT * FROM bindings").length, 0);
  const noPod = cni({ command: "ADD", containerId: "bare", ifname: "eth0", netns: "/x", stdin: conf });
  assert.is(noPod.status, 0, "no pod identity at all: plain allocation");
  assert.is(sql(db, "SELECT * FROM bindings").length, 0);
});

t("the same name in another namespace is another pod", ({ dir }) => {
  const conf = netconf(dir);
  const a = start(conf, "db-0", "team-a");
  const b = start(conf, "db-0", "team-b");
  assert.is.not(a.ips[0], b.ips[0]);
});

t("enableStatefulSet: false turns stickiness off and drops an old binding on DEL", ({ dir, db }) => {
  const on = netconf(dir);
  const off = netconf(dir, { enableStatefulSet: false });
  const a = start(on, "test-sts-0");
  stop(off, "test-sts-0", a.cid);
  assert.is(sql(db, "SELECT * FROM bindings").length, 0, "binding dropped");
  const b = start(off, "test-sts-0");
  assert.is(sql(db, "SELECT * FROM bindings").length, 0, "no binding made");
  stop(off, "test-sts-0", b.cid);
  assert.is(sql(db, "SELECT * FROM leases").length, 0);
});

t("a binding whose pool no longer holds the address moves to a new address", ({ dir, db }) => {
  const conf = netconf(dir);
  const a = start(conf, "test-sts-0");
  stop(conf, "test-sts-0", a.cid);
  const moved = netconf(dir, { pools: [{ name: "test-ippool", subnet: "10.6.0.0/16", ips: ["10.6.169.1-10.6.169.10"], gateway: "10.6.0.1" }] });
  const b = start(moved, "test-sts-0");
  assert.is(b.ips[0], "10.6.169.1/16");
  assert.equal(sql(db, "SELECT address FROM bindings"), [{ address: "10.6.169.1" }]);
});

t("berth release frees a binding by hand", ({ dir, db }) => {
  const conf = netconf(dir);
  const a = start(conf, "test-sts-0");
  stop(conf, "test-sts-0", a.cid);
  const r = cli(["release", "default/test-sts-0", "--db", db]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, "released binding default/test-sts-0 eth0 10.6.168.101");
  assert.is(sql(db, "SELECT * FROM bindings").length, 0);
  const other = start(conf, "other-0"); // the cursor has moved on; the freed address is back in the pool
  assert.is(other.ips[0], "10.6.168.102/16");
  assert.match(cli(["release", "default/test-sts-0", "--db", db]).stdout, "no binding");
});

t("dual-stack: one address of each family, or none at all", ({ dir, db }) => {
  const dual = (v6ips: string[]) =>
    netconf(dir, {
      pools: [
        { name: "v4", subnet: "10.6.0.0/16", ips: ["10.6.168.101-10.6.168.110"], gateway: "10.6.0.1" },
        { name: "v6", subnet: "fd00:6::/64", ips: v6ips, gateway: "fd00:6::1" },
      ],
      default_ipv4_ippool: ["v4"],
      default_ipv6_ippool: ["v6"],
    });
  const conf = dual(["fd00:6::101"]);
  const a = start(conf, "test-sts-0");
  assert.equal(a.json.ips, [
    { address: "10.6.168.101/16", gateway: "10.6.0.1" },
    { address: "fd00:6::101/64", gateway: "fd00:6::1" },
  ]);
  const r = cni({ command: "ADD", containerId: "second", ifname: "eth0", netns: "/x", args: podArgs("default", "test-sts-1"), stdin: conf });
  assert.is(r.json.code, 100);
  assert.match(r.json.msg, "IPv6 pool v6 exhausted: 1 of 1 addresses in use");
  assert.equal(
    sql(db, "SELECT address FROM leases ORDER BY family"),
    [{ address: "10.6.168.101" }, { address: "fd00:6::101" }],
    "the IPv4 address was rolled back",
  );
  assert.is(sql(db, "SELECT * FROM bindings").length, 2);
  stop(conf, "test-sts-0", a.cid);
  assert.equal(start(conf, "test-sts-0").ips, a.ips, "both families stick");
});

t("disabled pools never serve; the next candidate does", ({ dir }) => {
  const conf = netconf(dir, {
    pools: [
      { name: "old", subnet: "10.6.0.0/16", ips: ["10.6.1.1-10.6.1.5"], disable: true },
      { name: "new", subnet: "10.6.0.0/16", ips: ["10.6.2.1-10.6.2.5"] },
    ],
    default_ipv4_ippool: ["old", "new"],
  });
  assert.is(start(conf, "a-0").ips[0], "10.6.2.1/16");
  const onlyDisabled = netconf(dir, { pools: [{ name: "old", subnet: "10.6.0.0/16", ips: ["10.6.1.1"], disable: true }], default_ipv4_ippool: ["old"] });
  const r = cni({ command: "ADD", containerId: "x", ifname: "eth0", netns: "/x", stdin: onlyDisabled });
  assert.is(r.json.code, 101);
  assert.match(r.json.msg, "old are disabled");
});

t("several candidate pools: the next one serves when the first is full", ({ dir }) => {
  const conf = netconf(dir, {
    pools: [
      { name: "a", subnet: "10.6.0.0/16", ips: ["10.6.1.1"], default: true },
      { name: "b", subnet: "10.6.0.0/16", ips: ["10.6.2.1"], default: true },
    ],
    default_ipv4_ippool: undefined,
  });
  assert.is(start(conf, "x-0").ips[0], "10.6.1.1/16");
  assert.is(start(conf, "x-1").ips[0], "10.6.2.1/16");
  const r = cni({ command: "ADD", containerId: "full", ifname: "eth0", netns: "/x", stdin: conf });
  assert.is(r.json.code, 100);
  assert.match(r.json.msg, "every IPv4 pool exhausted: a (1 of 1 in use), b (1 of 1 in use)");
});

t.run();
