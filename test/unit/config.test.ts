import { test } from "uvu";
import * as assert from "uvu/assert";
import { CniError } from "../../plugin/cni/cni-error.ts";
import { parseNetConf } from "../../plugin/cni/netconf.ts";

const base = (ipam: Record<string, unknown> = {}, top: Record<string, unknown> = {}) =>
  JSON.stringify({
    cniVersion: "1.0.0",
    name: "net1",
    type: "macvlan",
    ipam: {
      type: "berth",
      pools: [{ name: "test-ippool", subnet: "10.6.0.0/16", ips: ["10.6.168.101-10.6.168.110"], gateway: "10.6.0.1", default: true }],
      ...ipam,
    },
    ...top,
  });

function fails(stdin: string, code: number, ...fragments: string[]) {
  try {
    parseNetConf(stdin);
  } catch (err) {
    assert.instance(err, CniError);
    const e = err as CniError;
    assert.is(e.code, code, e.msg);
    for (const f of fragments) assert.ok(e.msg.includes(f), `"${e.msg}" should mention ${f}`);
    return;
  }
  assert.unreachable(`expected code ${code}`);
}

test("a valid config is normalised", () => {
  const c = parseNetConf(base());
  assert.is(c.ipam.dbPath, "/var/lib/cni/berth/berth.db");
  assert.is(c.ipam.enableStatefulSet, true);
  assert.is(c.ipam.pools[0].total, 10n);
  assert.is(c.ipam.pools[0].gateway, "10.6.0.1");
  assert.equal(c.ipam.defaultPools, { 4: [], 6: [] });
  assert.is(c.validAttachments, undefined);
});

test("default pool names accept a list or a single name", () => {
  assert.equal(parseNetConf(base({ default_ipv4_ippool: "test-ippool" })).ipam.defaultPools[4], ["test-ippool"]);
  assert.equal(parseNetConf(base({ default_ipv4_ippool: ["test-ippool"] })).ipam.defaultPools[4], ["test-ippool"]);
});

test("decode, version and field errors carry the right code and name the field and value", () => {
  fails("{not json", 6, "decode");
  fails("[]", 7, "JSON object");
  fails(base({}, { cniVersion: "0.2.0" }), 1, '"0.2.0"');
  fails(base({}, { cniVersion: undefined }), 7, "cniVersion");
  fails(base({}, { name: "-bad" }), 7, "name", '"-bad"');
  fails(base({ dataDir: "relative/dir" }), 7, "ipam.dataDir", '"relative/dir"');
  fails(base({ logLevel: "loud" }), 7, "ipam.logLevel", '"loud"');
  fails(base({ enableStatefulSet: "yes" }), 7, "ipam.enableStatefulSet", '"yes"');
  fails(base({ ranges: [] }), 2, "ipam.ranges");
  fails(JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "bridge" }), 7, "ipam");
});

test("pool validation: host bits, ranges, gateway, names, overlap", () => {
  const pool = (p: Record<string, unknown>) => base({ pools: [{ name: "p", subnet: "10.6.0.0/16", default: true, ...p }] });
  fails(pool({ subnet: "10.6.1.0/16" }), 7, "ipam.pools[0].subnet", '"10.6.1.0/16"', "host bits");
  fails(pool({ ips: ["10.7.0.1-10.7.0.9"] }), 7, "ipam.pools[0].ips", '"10.7.0.1-10.7.0.9"', "outside subnet 10.6.0.0/16");
  fails(pool({ ips: ["10.6.0.9-10.6.0.1"] }), 7, "ipam.pools[0].ips", "before its start");
  fails(pool({ excludeIPs: ["10.8.0.1"] }), 7, "ipam.pools[0].excludeIPs", '"10.8.0.1"');
  fails(pool({ gateway: "10.9.0.1" }), 7, "ipam.pools[0].gateway", '"10.9.0.1"', "outside subnet");
  fails(pool({ gateway: "fd00::1" }), 7, "ipam.pools[0].gateway");
  fails(pool({ name: "Bad_Name" }), 7, "ipam.pools[0].name", '"Bad_Name"');
  fails(pool({ vlan: 5 }), 2, "ipam.pools[0].vlan");
  fails(pool({ routes: [{ dst: "10.9.0.0/8" }] }), 7, "ipam.pools[0].routes[0].dst", "host bits");
  fails(pool({ routes: [{ dst: "fd00::/8" }] }), 7, "ipam.pools[0].routes[0].dst", "IPv4");
  fails(pool({ default: "true" }), 7, "ipam.pools[0].default");
  fails(
    base({
      pools: [
        { name: "a", subnet: "10.6.0.0/16", ips: ["10.6.0.1-10.6.0.20"], default: true },
        { name: "a", subnet: "10.7.0.0/16" },
      ],
    }),
    7,
    "ipam.pools[1].name",
    "duplicate",
  );
  fails(
    base({
      pools: [
        { name: "a", subnet: "10.6.0.0/16", ips: ["10.6.0.1-10.6.0.20"], default: true },
        { name: "b", subnet: "10.6.0.0/16", ips: ["10.6.0.15-10.6.0.30"] },
      ],
    }),
    7,
    "pool b overlaps pool a",
    "10.6.0.15",
  );
});

test("default pool names must exist and match the family; something must serve", () => {
  fails(base({ default_ipv4_ippool: ["nope"] }), 7, "ipam.default_ipv4_ippool", '"nope"');
  fails(base({ default_ipv6_ippool: ["test-ippool"] }), 7, "ipam.default_ipv6_ippool", "IPv4, not IPv6");
  fails(base({ pools: [{ name: "p", subnet: "10.6.0.0/16" }] }), 7, "ipam.pools", "no pool to allocate from");
  fails(base({ default_ipv4_ippool: 5 }), 7, "ipam.default_ipv4_ippool");
});

test("excludeIPs and gateway are never handed out and not counted", () => {
  const c = parseNetConf(
    base({ pools: [{ name: "p", subnet: "10.6.0.0/24", ips: ["10.6.0.1-10.6.0.10"], excludeIPs: ["10.6.0.2-10.6.0.3"], gateway: "10.6.0.1", default: true }] }),
  );
  assert.is(c.ipam.pools[0].total, 7n);
});

test("omitted ips means the usable subnet", () => {
  const c = parseNetConf(base({ pools: [{ name: "p", subnet: "10.6.0.0/24", default: true }] }));
  assert.is(c.ipam.pools[0].total, 254n);
});

test("GC attachments: missing, null, [], and the older key", () => {
  assert.is(parseNetConf(base()).validAttachments, undefined);
  assert.equal(parseNetConf(base({}, { "cni.dev/valid-attachments": null })).validAttachments, []);
  assert.equal(parseNetConf(base({}, { "cni.dev/valid-attachments": [] })).validAttachments, []);
  assert.equal(parseNetConf(base({}, { "cni.dev/attachments": [{ containerID: "c", ifname: "eth0" }] })).validAttachments, [
    { containerID: "c", ifname: "eth0" },
  ]);
  fails(base({}, { "cni.dev/valid-attachments": [{ containerID: 5 }] }), 7, "cni.dev/valid-attachments[0]");
});

test.run();
