/**
 * Every bad input gets the right CNI error code, a message naming the field
 * and value, one JSON document on stdout, a non-zero exit, and leaves the
 * lease database exactly as it was.
 */

import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { cni, dbSnapshot, type Invocation, netconf, podArgs, tempDir } from "../support/berth.ts";

const { path: dir, cleanup } = tempDir();
const db = join(dir, "berth.db");
const good = netconf(dir);
const env = { containerId: "bad-1", ifname: "eth0", netns: "/var/run/netns/x" };
const withIpam = (ipam: Record<string, unknown>) => ({ ...good, ipam: { ...good.ipam, ...ipam } });
const pool = (p: Record<string, unknown>) => withIpam({ pools: [{ ...good.ipam.pools[0], ...p }] });

// Some state to protect: two pods hold addresses, one StatefulSet pod is bound.
for (const [cid, pod] of [
  ["keep-1", "test-sts-0"],
  ["keep-2", "web-7d9f5c6b8-xk2pq"],
]) {
  const r = cni({ command: "ADD", ...env, containerId: cid, args: podArgs("default", pod), stdin: good });
  if (r.status !== 0) throw new Error(`setup ADD failed: ${r.stdout}`);
}
cni({ command: "DEL", ...env, containerId: "keep-1", stdin: good }); // binding stays, lease goes
cni({ command: "ADD", ...env, containerId: "keep-3", args: podArgs("default", "test-sts-0"), stdin: good });

interface Case {
  name: string;
  inv: Partial<Invocation>;
  code: number;
  says: string[];
}

const cases: Case[] = [
  { name: "CNI_COMMAND missing", inv: { command: "" }, code: 4, says: ["CNI_COMMAND"] },
  { name: "CNI_COMMAND unknown", inv: { command: "ATTACH" }, code: 4, says: ['"ATTACH"'] },
  { name: "ADD without CNI_CONTAINERID", inv: { containerId: "" }, code: 4, says: ["CNI_CONTAINERID"] },
  { name: "ADD without CNI_NETNS", inv: { netns: "" }, code: 4, says: ["CNI_NETNS"] },
  { name: "ADD without CNI_IFNAME", inv: { ifname: "" }, code: 4, says: ["CNI_IFNAME"] },
  { name: "bad container ID", inv: { containerId: "../../etc" }, code: 4, says: ["CNI_CONTAINERID", '"../../etc"'] },
  { name: "bad interface name", inv: { ifname: "eth0/1" }, code: 4, says: ["CNI_IFNAME", '"eth0/1"'] },
  { name: "CNI_ARGS pair without '='", inv: { args: "IgnoreUnknown=1;K8S_POD_NAME" }, code: 4, says: ['"K8S_POD_NAME"'] },
  { name: "unknown CNI_ARGS key without IgnoreUnknown", inv: { args: "FOO=bar" }, code: 4, says: ['"FOO"'] },
  { name: "stdin not JSON", inv: { stdin: "{cniVersion: 1.0.0" }, code: 6, says: ["decode"] },
  { name: "stdin empty", inv: { stdin: "" }, code: 6, says: ["decode"] },
  { name: "unsupported cniVersion", inv: { stdin: { ...good, cniVersion: "0.2.0" } }, code: 1, says: ['"0.2.0"'] },
  { name: "cniVersion not a string", inv: { stdin: { ...good, cniVersion: 1 } }, code: 1, says: ["1"] },
  { name: "no ipam block", inv: { stdin: { ...good, ipam: undefined } }, code: 7, says: ["ipam"] },
  { name: "unknown ipam field", inv: { stdin: withIpam({ subnet: "10.6.0.0/16" }) }, code: 2, says: ["ipam.subnet"] },
  { name: "subnet with host bits", inv: { stdin: pool({ subnet: "10.6.1.0/16" }) }, code: 7, says: ["ipam.pools[0].subnet", '"10.6.1.0/16"'] },
  {
    name: "range outside the subnet",
    inv: { stdin: pool({ ips: ["10.7.168.101-10.7.168.110"] }) },
    code: 7,
    says: ["ipam.pools[0].ips", '"10.7.168.101-10.7.168.110"'],
  },
  { name: "gateway outside the subnet", inv: { stdin: pool({ gateway: "10.9.0.1" }) }, code: 7, says: ["ipam.pools[0].gateway", '"10.9.0.1"'] },
  { name: "not an address in ips", inv: { stdin: pool({ ips: ["10.6.168.300"] }) }, code: 7, says: ["ipam.pools[0].ips", '"10.6.168.300"'] },
  {
    name: "duplicate pool names",
    inv: { stdin: withIpam({ pools: [good.ipam.pools[0], { ...good.ipam.pools[0], ips: ["10.6.169.1"] }] }) },
    code: 7,
    says: ["ipam.pools[1].name", '"test-ippool"', "duplicate"],
  },
  {
    name: "overlapping pools",
    inv: { stdin: withIpam({ pools: [good.ipam.pools[0], { name: "other", subnet: "10.6.0.0/16", ips: ["10.6.168.110-10.6.168.120"] }] }) },
    code: 7,
    says: ["overlaps", "10.6.168.110"],
  },
  {
    name: "default pool that does not exist",
    inv: { stdin: withIpam({ default_ipv4_ippool: ["missing-pool"] }) },
    code: 7,
    says: ["ipam.default_ipv4_ippool", '"missing-pool"'],
  },
  { name: "relative dataDir", inv: { stdin: withIpam({ dataDir: "var/lib/berth" }) }, code: 7, says: ["ipam.dataDir", '"var/lib/berth"'] },
  { name: "enableStatefulSet not a boolean", inv: { stdin: withIpam({ enableStatefulSet: "false" }) }, code: 7, says: ["ipam.enableStatefulSet", '"false"'] },
  { name: "bad network name", inv: { stdin: { ...good, name: "bad name" } }, code: 7, says: ["name", '"bad name"'] },
  {
    name: "pools given in cluster mode",
    inv: { stdin: withIpam({ kubeconfig: "/etc/cni/net.d/berth.d/berth.kubeconfig" }) },
    code: 7,
    says: ["ipam.pools", "cluster mode"],
  },
  { name: "timeoutSeconds not a positive number", inv: { stdin: withIpam({ timeoutSeconds: 0 }) }, code: 7, says: ["ipam.timeoutSeconds", "0"] },
];

for (const c of cases) {
  test(`${c.name} → code ${c.code}, database unchanged`, () => {
    const before = dbSnapshot(db);
    const inv: Invocation = { command: "ADD", ...env, stdin: good, ...c.inv } as Invocation;
    const r = cni(inv);
    assert.is.not(r.status, 0, "exit status");
    assert.type(r.json, "object", "stdout is one JSON document");
    assert.is(r.json.code, c.code, r.json.msg);
    assert.type(r.json.cniVersion, "string");
    for (const s of c.says) assert.ok(r.json.msg.includes(s), `message ${JSON.stringify(r.json.msg)} should name ${s}`);
    assert.is(dbSnapshot(db), before, "database unchanged");
  });
}

test("the error reply uses the config's cniVersion when it is readable", () => {
  const r = cni({ command: "ADD", ...env, stdin: { ...pool({ subnet: "10.6.1.0/16" }), cniVersion: "0.4.0" } });
  assert.is(r.json.cniVersion, "0.4.0");
});

test("a bad config DEL also changes nothing", () => {
  const before = dbSnapshot(db);
  const r = cni({ command: "DEL", containerId: "keep-2", ifname: "eth0", stdin: pool({ gateway: "10.9.0.1" }) });
  assert.is(r.json.code, 7);
  assert.is(dbSnapshot(db), before);
});

test.after(cleanup);
test.run();
