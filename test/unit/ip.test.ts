import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  countAddresses,
  findFree,
  formatAddress,
  inRanges,
  mergeRanges,
  normalizeAddress,
  parseAddress,
  parseRange,
  parseSubnet,
  subtractRanges,
  usableRange,
} from "../../plugin/ipam/ip.ts";

const v4 = (s: string) => parseAddress(s)!.value;
const r4 = (a: string, b: string) => ({ family: 4 as const, start: v4(a), end: v4(b) });

test("parseAddress is strict", () => {
  for (const bad of ["1.2.3", "1.2.3.256", "010.1.1.1", "10.1.1.1/24", " 1.1.1.1", "fe80::1%eth0", "", "x"]) {
    assert.is(parseAddress(bad), undefined, bad);
  }
  for (const bad of [
    ":::",
    "1::2::3",
    "12345::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "g::1",
    ":1::",
    "1::2:",
    "1:2:3:4:5:6:7::8",
    "::ffff:1.2.3.4",
    "1.2.3.4.5",
    "256.1.1.1",
    "1..2.3",
  ]) {
    assert.is(parseAddress(bad), undefined, bad);
  }
  for (const good of ["::", "::1", "fd00::", "1:2:3:4:5:6:7:8", "1::8", "1:2:3:4:5:6:7::", "FD00:0006::0101", "0.0.0.0", "255.255.255.255"]) {
    assert.ok(parseAddress(good), good);
  }
  assert.is(parseAddress("fd00:0006::0101")!.value, parseAddress("fd00:6::101")!.value);
  assert.equal(parseAddress("10.6.168.101"), { family: 4, value: 168208485n });
  assert.is(parseAddress("2001:DB8::1")!.family, 6);
});

test("formatAddress / normalizeAddress give canonical text", () => {
  assert.is(formatAddress(4, v4("10.6.168.101")), "10.6.168.101");
  assert.is(normalizeAddress("2001:0DB8:0:0::1"), "2001:db8::1");
  assert.is(normalizeAddress("nope"), undefined);
});

test("parseSubnet rejects host bits and bad prefixes", () => {
  const ok = parseSubnet("10.6.0.0/16");
  assert.ok(ok.ok);
  if (ok.ok) assert.equal([ok.subnet.cidr, ok.subnet.prefix, ok.subnet.family], ["10.6.0.0/16", 16, 4]);
  const host = parseSubnet("10.6.1.0/16");
  assert.not.ok(host.ok);
  if (!host.ok) assert.match(host.reason, "host bits set (network address is 10.6.0.0/16)");
  for (const bad of ["10.6.0.0", "10.6.0.0/33", "10.6.0.0/-1", "10.6.0.0/016", "fd00::/129", "x/8"]) {
    assert.not.ok(parseSubnet(bad).ok, bad);
  }
  const v6 = parseSubnet("FD00:6::/64");
  assert.ok(v6.ok && v6.subnet.cidr === "fd00:6::/64");
});

test("parseRange handles single addresses and a-b ranges", () => {
  assert.equal(parseRange("10.0.0.5"), r4("10.0.0.5", "10.0.0.5"));
  assert.equal(parseRange("10.0.0.5-10.0.0.9"), r4("10.0.0.5", "10.0.0.9"));
  assert.is(parseRange("10.0.0.9-10.0.0.5"), "range end is before its start");
  assert.is(parseRange("10.0.0.1-fd00::1"), "range mixes IPv4 and IPv6");
  assert.type(parseRange("10.0.0.1-"), "string");
});

test("merge, subtract and count ranges", () => {
  const merged = mergeRanges([r4("10.0.0.5", "10.0.0.9"), r4("10.0.0.1", "10.0.0.4"), r4("10.0.0.20", "10.0.0.20")]);
  assert.equal(merged, [r4("10.0.0.1", "10.0.0.9"), r4("10.0.0.20", "10.0.0.20")]);
  const cut = subtractRanges([r4("10.0.0.1", "10.0.0.10")], [r4("10.0.0.3", "10.0.0.4"), r4("10.0.0.10", "10.0.0.12")]);
  assert.equal(cut, [r4("10.0.0.1", "10.0.0.2"), r4("10.0.0.5", "10.0.0.9")]);
  assert.is(countAddresses(cut), 7n);
  assert.ok(inRanges(v4("10.0.0.5"), cut));
  assert.not.ok(inRanges(v4("10.0.0.3"), cut));
});

test("usableRange drops network/broadcast (IPv4) and subnet-router anycast (IPv6)", () => {
  const s = parseSubnet("10.0.0.0/30");
  assert.ok(s.ok);
  if (s.ok) assert.equal(usableRange(s.subnet), r4("10.0.0.1", "10.0.0.2"));
  const p2p = parseSubnet("10.0.0.0/31");
  if (p2p.ok) assert.is(countAddresses([usableRange(p2p.subnet)]), 2n);
  const v6 = parseSubnet("fd00::/126");
  if (v6.ok) assert.is(countAddresses([usableRange(v6.subnet)]), 3n);
});

test("findFree walks round-robin from the cursor and wraps", () => {
  const ranges = [r4("10.0.0.1", "10.0.0.3"), r4("10.0.0.10", "10.0.0.11")];
  const taken = new Set([v4("10.0.0.1")]);
  const free = (v: bigint) => !taken.has(v);
  assert.is(findFree(ranges, undefined, free), v4("10.0.0.2"));
  assert.is(findFree(ranges, v4("10.0.0.3"), free), v4("10.0.0.10"));
  assert.is(findFree(ranges, v4("10.0.0.11"), free), v4("10.0.0.2"), "wraps past the end, skipping a taken address");
  assert.is(findFree(ranges, v4("10.0.0.5"), free), v4("10.0.0.10"), "cursor in a gap starts at the next range");
  assert.is(findFree(ranges, v4("10.9.9.9"), free), v4("10.0.0.2"), "cursor beyond every range starts over");
  assert.is(
    findFree(ranges, undefined, () => false),
    undefined,
  );
  let calls = 0;
  findFree(ranges, undefined, () => (calls++, false));
  assert.is(calls, 5, "each address is tried exactly once");
});

test.run();
