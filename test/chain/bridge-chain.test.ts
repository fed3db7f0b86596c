/**
 * The real chain: Debian's reference `bridge` plugin (containernetworking-plugins
 * 1.1.1) delegating IPAM to dist/berth, attaching veths into real network
 * namespaces. Nothing here sends traffic: addresses are only assigned and
 * inspected.
 *
 * Needs root (netns, links). Without it, or without /usr/lib/cni/bridge, or if
 * `ip netns add` fails, every test FAILS with the reason; nothing is skipped.
 *
 * Run: npm run build && node --import tsx node_modules/uvu/bin.js test/chain
 *
 * Every test uses the bridge "berthbr0" with "isGateway": false. The bridge
 * plugin would also work with isGateway true (for an IPv6 pool without a
 * gateway it then makes one up, fd00:6::1, and puts it on the bridge), but then
 * it assigns the gateway addresses to the host-side bridge, adding host routes
 * for 10.6.0.0/16 and fd00:6::/64. With isGateway false the host is not touched
 * beyond the bridge and veth links, and the gateway in the result is exactly
 * the pool's (or absent when the pool has none).
 */

import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Binding, Lease } from "../../store/lease-store.ts";
import { BERTH, cli, netconf, podArgs, seedPool, tempDir } from "../support/berth.ts";
import { testNodeConfig } from "../support/node-config.ts";

const BRIDGE_PLUGIN = "/usr/lib/cni/bridge";
const BRIDGE = "berthbr0";
const NS_PREFIX = "berth-t-";
/** This run's namespaces: berth-t-<pid>-<n>. */
const RUN_PREFIX = `${NS_PREFIX}${process.pid}-`;
const POOL_V6 = { name: "test-ippool-v6", subnet: "fd00:6::/64", ips: ["fd00:6::101-fd00:6::110"] };

// ---------------------------------------------------------------- processes

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string, env?: Record<string, string>): Run {
  const r = spawnSync(cmd, args, { input, env: env ?? process.env, encoding: "utf8", timeout: 60_000 });
  if (r.error) return { status: -1, stdout: r.stdout ?? "", stderr: `${r.stderr ?? ""}\n${r.error.message}` };
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function describe(r: Run): string {
  return `exit ${r.status}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}

/** Runs a command that must succeed; throws with its output otherwise. */
function must(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${describe(r)}`);
  return r.stdout;
}

// ---------------------------------------------------------------- preconditions

let preflightError: string | undefined;
let preflightDone = false;

/** Called before every test: a missing precondition fails the test, loudly. */
function preflight(): void {
  if (!preflightDone) {
    preflightDone = true;
    const problems: string[] = [];
    if (process.getuid?.() !== 0) problems.push(`must run as root (uid is ${process.getuid?.()}): the chain tests create network namespaces and links`);
    if (!existsSync(BRIDGE_PLUGIN)) problems.push(`${BRIDGE_PLUGIN} is missing: apt-get install -y containernetworking-plugins (or run scripts/setup.sh)`);
    if (run("ip", ["-V"]).status !== 0) problems.push("`ip` (iproute2) is not usable: apt-get install -y iproute2");
    if (problems.length) preflightError = problems.join("\n");
  }
  if (preflightError) throw new Error(`chain test preconditions not met:\n${preflightError}`);
}

// ---------------------------------------------------------------- plugin dir

/** CNI_PATH's first entry: a directory whose `berth` is dist/berth. */
let pluginDir: string | undefined;

function cniPath(): string {
  if (!pluginDir) {
    pluginDir = mkdtempSync(join(tmpdir(), "berth-chain-plugins-"));
    symlinkSync(BERTH, join(pluginDir, "berth"));
  }
  return `${pluginDir}:/usr/lib/cni`;
}

// ---------------------------------------------------------------- namespaces

let nsCounter = 0;

function addNetns(): string {
  const name = `${RUN_PREFIX}${++nsCounter}`;
  const r = run("ip", ["netns", "add", name]);
  if (r.status !== 0) throw new Error(`ip netns add ${name} failed (chain tests need root and a usable /var/run/netns): ${describe(r)}`);
  return name;
}

function delNetns(name: string): void {
  if (existsSync(`/var/run/netns/${name}`)) must("ip", ["netns", "del", name]);
}

interface NsAddr {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
  scope: string;
}

/** Global-scope addresses on eth0 inside the namespace (IPv6 ones may still be tentative; listed is enough). */
function nsAddrs(ns: string, dev = "eth0"): NsAddr[] {
  const out = JSON.parse(must("ip", ["-n", ns, "-j", "addr", "show", "dev", dev])) as { addr_info: NsAddr[] }[];
  assert.is(out.length, 1, `ip -n ${ns} addr show dev ${dev}: expected one link`);
  return out[0].addr_info.filter((a) => a.scope === "global").map((a) => ({ family: a.family, local: a.local, prefixlen: a.prefixlen, scope: a.scope }));
}

/** The namespace's global addresses as "addr/prefix", sorted. */
function nsCidrs(ns: string): string[] {
  return nsAddrs(ns)
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
}

// ---------------------------------------------------------------- the chain

interface Attachment {
  conf: Record<string, any>;
  containerId: string;
  netns: string;
  args?: string;
  ifname: string;
  /** The bridge's ADD result. */
  result: any;
}

function bridgeEnv(command: string, a: Pick<Attachment, "containerId" | "netns" | "args" | "ifname">): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: command,
    CNI_CONTAINERID: a.containerId,
    CNI_NETNS: `/var/run/netns/${a.netns}`,
    CNI_IFNAME: a.ifname,
    CNI_PATH: cniPath(),
    // The runtime's environment reaches the delegated IPAM plugin: the tests' node allows temp paths.
    BERTH_NODE_CONFIG: testNodeConfig(),
  };
  if (a.args !== undefined) env.CNI_ARGS = a.args;
  return env;
}

function bridge(command: string, conf: object, a: Pick<Attachment, "containerId" | "netns" | "args" | "ifname">): Run & { json: any } {
  const r = run(BRIDGE_PLUGIN, [], JSON.stringify(conf), bridgeEnv(command, a));
  let json: any;
  try {
    json = r.stdout.trim() === "" ? undefined : JSON.parse(r.stdout);
  } catch (_err) {
    throw new Error(`bridge ${command} printed something that is not JSON: ${describe(r)}`);
  }
  return { ...r, json };
}

/**
 * One test's resources: every namespace and attachment it makes is undone by
 * `cleanup()` (called from `finally`), whatever state the test died in.
 */
class Scope {
  readonly data = tempDir("berth-chain-data-");
  private namespaces = new Set<string>();
  private live = new Map<string, Attachment>();

  get dataDir(): string {
    return this.data.path;
  }

  get db(): string {
    return join(this.data.path, "berth.db");
  }

  netns(): string {
    const n = addNetns();
    this.namespaces.add(n);
    return n;
  }

  /** bridge ADD in a fresh namespace (unless one is given); asserts success. */
  add(conf: Record<string, any>, opts: { args?: string; netns?: string; containerId?: string } = {}): Attachment {
    const a: Attachment = {
      conf,
      containerId: opts.containerId ?? randomBytes(32).toString("hex"),
      netns: opts.netns ?? this.netns(),
      args: opts.args,
      ifname: "eth0",
      result: undefined,
    };
    const key = `${a.containerId}/${a.ifname}`;
    this.live.set(key, a); // DEL on cleanup even if ADD half-failed
    const r = bridge("ADD", conf, a);
    assert.is(r.status, 0, `bridge ADD failed: ${describe(r)}`);
    a.result = r.json;
    return a;
  }

  /** bridge DEL; asserts success. Keeps the namespace unless `dropNetns`. */
  del(a: Attachment, dropNetns = false): void {
    const r = bridge("DEL", a.conf, a);
    assert.is(r.status, 0, `bridge DEL failed: ${describe(r)}`);
    this.live.delete(`${a.containerId}/${a.ifname}`);
    if (dropNetns) {
      delNetns(a.netns);
      this.namespaces.delete(a.netns);
    }
  }

  cleanup(): void {
    const errors: string[] = [];
    for (const a of this.live.values()) {
      const r = bridge("DEL", a.conf, a);
      if (r.status !== 0) errors.push(`cleanup DEL ${a.containerId.slice(0, 12)}: ${describe(r)}`);
    }
    this.live.clear();
    for (const n of this.namespaces) {
      try {
        delNetns(n);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    this.namespaces.clear();
    this.data.cleanup();
    if (errors.length) console.error(`chain test cleanup problems:\n${errors.join("\n")}`);
  }
}

async function withScope(fn: (s: Scope) => void | Promise<void>): Promise<void> {
  preflight();
  const s = new Scope();
  try {
    await fn(s);
  } finally {
    s.cleanup();
  }
}

// ---------------------------------------------------------------- berth's DB

// The rows `berth inspect -o json` prints are the store's own row types.
function inspect<T>(what: "leases" | "bindings" | "pools", db: string): T[] {
  const r = cli(["inspect", what, "--db", db, "-o", "json"]);
  assert.is(r.status, 0, `berth inspect ${what} failed: exit ${r.status}\n${r.stderr}`);
  return JSON.parse(r.stdout) as T[];
}

const leases = (db: string) => inspect<Lease>("leases", db);
const bindings = (db: string) => inspect<Binding>("bindings", db);

function leasesOf(db: string, containerId: string): Lease[] {
  return leases(db).filter((l) => l.container_id === containerId);
}

function bindingsOf(db: string, pod: string): Binding[] {
  return bindings(db).filter((b) => b.pod_namespace === "default" && b.pod_name === pod);
}

// ---------------------------------------------------------------- shared assertions

function inSeedRange(address: string): boolean {
  const m = /^10\.6\.168\.(\d+)$/.exec(address);
  return !!m && Number(m[1]) >= 101 && Number(m[1]) <= 110;
}

/** The bridge result's addresses ("addr/prefix"), sorted. */
function resultCidrs(result: any): string[] {
  return (result.ips as { address: string }[]).map((ip) => ip.address).sort();
}

/**
 * The three views agree: bridge result == addresses on eth0 in the netns ==
 * berth's leases for this container. Returns the addresses without prefix.
 */
function assertAgree(s: Scope, a: Attachment, expectedCount: number): string[] {
  const fromResult = resultCidrs(a.result);
  assert.is(fromResult.length, expectedCount, `result should carry ${expectedCount} address(es): ${JSON.stringify(a.result)}`);
  assert.equal(nsCidrs(a.netns), fromResult, `addresses in netns ${a.netns} differ from the bridge result`);
  const held = leasesOf(s.db, a.containerId);
  assert.equal(held.map((l) => l.address).sort(), fromResult.map((c) => c.split("/")[0]).sort(), "berth's leases differ from the bridge result");
  for (const l of held) assert.is(l.ifname, "eth0");
  return fromResult.map((c) => c.split("/")[0]);
}

/** The result's ips[] point at the eth0 inside this namespace. */
function assertIpsOnSandboxIface(a: Attachment): void {
  const ifaces = a.result.interfaces as { name: string; sandbox?: string }[];
  assert.ok(Array.isArray(ifaces), "bridge result has interfaces");
  for (const ip of a.result.ips as { interface?: number }[]) {
    assert.type(ip.interface, "number", "ips[].interface set by bridge");
    const iface = ifaces[ip.interface!];
    assert.is(iface?.name, "eth0");
    assert.is(iface?.sandbox, `/var/run/netns/${a.netns}`);
  }
}

function confFor(s: Scope, ipam: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  return netconf(s.dataDir, ipam, { bridge: BRIDGE, isGateway: false, ...top });
}

// ---------------------------------------------------------------- hooks

/** Leftovers of an earlier run that died: namespaces of processes that are gone, an empty bridge. */
function removeStale(): void {
  const list = run("ip", ["-j", "netns", "list"]);
  if (list.status === 0 && list.stdout.trim()) {
    for (const { name } of JSON.parse(list.stdout) as { name: string }[]) {
      const m = new RegExp(`^${NS_PREFIX}(\\d+)-\\d+$`).exec(name);
      if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
      console.error(`removing stale namespace ${name} from an earlier run`);
      run("ip", ["netns", "del", name]);
    }
  }
  removeBridgeIfUnused();
}

function removeBridgeIfUnused(): void {
  if (run("ip", ["link", "show", "dev", BRIDGE]).status !== 0) return;
  const ports = run("ip", ["-j", "link", "show", "master", BRIDGE]);
  if (ports.status === 0 && ports.stdout.trim() && (JSON.parse(ports.stdout) as unknown[]).length > 0) {
    console.error(`bridge ${BRIDGE} still has ports; left in place`);
    return;
  }
  run("ip", ["link", "del", BRIDGE]);
}

test.before(() => {
  if (process.getuid?.() === 0) removeStale();
});

test.after(() => {
  // Anything of this run's still around (a test whose cleanup itself failed).
  const list = run("ip", ["-j", "netns", "list"]);
  if (list.status === 0 && list.stdout.trim()) {
    for (const { name } of JSON.parse(list.stdout) as { name: string }[]) {
      if (name.startsWith(RUN_PREFIX)) run("ip", ["netns", "del", name]);
    }
  }
  if (process.getuid?.() === 0) removeBridgeIfUnused();
  if (pluginDir) rmSync(pluginDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

for (const cniVersion of ["0.3.1", "0.4.0", "1.0.0"]) {
  test(`IPv4 through bridge, cniVersion ${cniVersion}: result shape, address in the netns, gateway from the pool`, () =>
    withScope((s) => {
      const conf = confFor(s, {}, { cniVersion });
      const a = s.add(conf);

      assert.is(a.result.cniVersion, cniVersion);
      assert.is(a.result.ips.length, 1);
      const ip = a.result.ips[0];
      if (cniVersion === "1.0.0") assert.not.ok("version" in ip, `1.0.0 ips[] have no version field: ${JSON.stringify(ip)}`);
      else assert.is(ip.version, "4", `${cniVersion} ips[].version: ${JSON.stringify(ip)}`);
      assert.is(ip.gateway, "10.6.0.1", "gateway from the pool");
      assert.match(ip.address, /\/16$/, "prefix from the pool's subnet 10.6.0.0/16");
      assertIpsOnSandboxIface(a);

      const [address] = assertAgree(s, a, 1);
      assert.ok(inSeedRange(address), `${address} is in 10.6.168.101-10.6.168.110`);
      const [lease] = leasesOf(s.db, a.containerId);
      assert.is(lease.network, "berth-test");
      assert.is(lease.pool, "test-ippool");
      assert.is(lease.pod_name, null, "no CNI_ARGS: no pod recorded");

      s.del(a);
      assert.equal(leases(s.db), [], "DEL released the lease");
      assert.equal(bindings(s.db), [], "no pod, no binding");
    }));
}

test("dual-stack through bridge: one IPv4 and one IPv6 address in the netns", () =>
  withScope((s) => {
    const conf = confFor(s, {
      pools: [seedPool(), POOL_V6],
      default_ipv4_ippool: ["test-ippool"],
      default_ipv6_ippool: ["test-ippool-v6"],
    });
    const a = s.add(conf, { args: podArgs("default", "dual-sts-0", randomUUID()) });

    const ips = a.result.ips as { address: string; gateway?: string }[];
    const v4 = ips.filter((ip) => !ip.address.includes(":"));
    const v6 = ips.filter((ip) => ip.address.includes(":"));
    assert.is(v4.length, 1, `one IPv4 address: ${JSON.stringify(ips)}`);
    assert.is(v6.length, 1, `one IPv6 address: ${JSON.stringify(ips)}`);
    assert.is(v4[0].gateway, "10.6.0.1");
    assert.is(v6[0].gateway, undefined, "the IPv6 pool has no gateway and isGateway is false: none in the result");
    assert.match(v6[0].address, /^fd00:6::(10[1-9]|110)\/64$/);
    assertIpsOnSandboxIface(a);

    const inNs = nsAddrs(a.netns);
    assert.is(inNs.filter((x) => x.family === "inet").length, 1, `one inet address in the netns: ${JSON.stringify(inNs)}`);
    assert.is(inNs.filter((x) => x.family === "inet6").length, 1, `one global inet6 address in the netns: ${JSON.stringify(inNs)}`);
    const addresses = assertAgree(s, a, 2);
    assert.equal(
      leasesOf(s.db, a.containerId)
        .map((l) => l.family)
        .sort(),
      [4, 6],
    );
    assert.equal(
      bindingsOf(s.db, "dual-sts-0")
        .map((b) => b.address)
        .sort(),
      [...addresses].sort(),
      "a binding per family for the StatefulSet pod",
    );

    s.del(a, true);
    assert.equal(leases(s.db), [], "DEL released both leases");
  }));

test("seed scenario through the real chain: StatefulSet pods keep their addresses, a Deployment pod does not", () =>
  withScope((s) => {
    const conf = confFor(s);
    const sts = (name: string) => s.add(conf, { args: podArgs("default", name, randomUUID()) });

    /** Creates the pods, checks every view agrees and the DB names the pod; returns pod → address. */
    const create = (names: string[]) => {
      const out = new Map<string, { a: Attachment; address: string }>();
      for (const name of names) {
        const a = sts(name);
        const [address] = assertAgree(s, a, 1);
        assert.ok(inSeedRange(address), `${name}: ${address} is in the pool`);
        const [lease] = leasesOf(s.db, a.containerId);
        assert.is(lease.pod_name, name);
        assert.is(lease.pod_uid, /K8S_POD_UID=([^;]+)/.exec(a.args!)![1], `${name}: lease records the new pod UID`);
        out.set(name, { a, address });
      }
      return out;
    };
    const destroy = (pods: Map<string, { a: Attachment }>) => {
      for (const { a } of pods.values()) s.del(a, true);
    };
    const addresses = (pods: Map<string, { address: string }>) => Object.fromEntries([...pods].map(([k, v]) => [k, v.address]));

    // Two replicas.
    const first = create(["test-sts-0", "test-sts-1"]);
    const two = addresses(first);
    assert.is.not(two["test-sts-0"], two["test-sts-1"], "distinct addresses");

    // Pods deleted: sandboxes gone, leases gone, bindings kept.
    destroy(first);
    assert.equal(leases(s.db), [], "no leases once both sandboxes are deleted");
    for (const name of ["test-sts-0", "test-sts-1"]) {
      assert.equal(
        bindingsOf(s.db, name).map((b) => b.address),
        [two[name]],
        `${name} keeps its binding`,
      );
    }

    // Recreated: new netns, container IDs, UIDs; same addresses inside the new namespaces.
    const second = create(["test-sts-0", "test-sts-1"]);
    assert.equal(addresses(second), two, "recreated pods got their addresses back");
    for (const name of ["test-sts-0", "test-sts-1"]) {
      assert.is.not(second.get(name)!.a.netns, first.get(name)!.a.netns);
      assert.is.not(second.get(name)!.a.containerId, first.get(name)!.a.containerId);
    }

    // Scale to three.
    const third = create(["test-sts-2"]);
    const three = { ...two, ...addresses(third) };
    assert.is(new Set(Object.values(three)).size, 3, `three distinct addresses: ${JSON.stringify(three)}`);

    // All three recreated.
    destroy(second);
    destroy(third);
    assert.equal(leases(s.db), []);
    const again = create(["test-sts-0", "test-sts-1", "test-sts-2"]);
    assert.equal(addresses(again), three, "all three recreated pods got their addresses back");
    assert.equal(
      bindings(s.db)
        .map((b) => `${b.pod_name}=${b.address}`)
        .sort(),
      Object.entries(three)
        .map(([k, v]) => `${k}=${v}`)
        .sort(),
    );

    // A Deployment-style pod: an address while it runs, nothing kept after DEL.
    const web = s.add(conf, { args: podArgs("default", "web-7d9f5c6b8-xk2pq", randomUUID()) });
    const [webAddress] = assertAgree(s, web, 1);
    assert.ok(inSeedRange(webAddress));
    assert.not.ok(Object.values(three).includes(webAddress), `${webAddress} is not one of the StatefulSet addresses`);
    assert.equal(bindingsOf(s.db, "web-7d9f5c6b8-xk2pq"), [], "no binding for a Deployment pod");
    s.del(web, true);
    assert.equal(
      leases(s.db).filter((l) => l.pod_name === "web-7d9f5c6b8-xk2pq"),
      [],
      "no lease for the Deployment pod after DEL",
    );
    assert.equal(bindingsOf(s.db, "web-7d9f5c6b8-xk2pq"), [], "no binding for the Deployment pod after DEL");
    const [pool] = inspect<{ name: string; allocated: number; total: number }>("pools", s.db);
    assert.is(pool.allocated, 3, "only the three StatefulSet addresses stay allocated");
    assert.is(pool.total, 10);
  }));

test("CHECK through bridge (cniVersion 1.0.0) succeeds while the lease exists", () =>
  withScope((s) => {
    const conf = confFor(s, {}, { cniVersion: "1.0.0" });
    const a = s.add(conf, { args: podArgs("default", "check-sts-0", randomUUID()) });
    assertAgree(s, a, 1);

    const check = bridge("CHECK", { ...conf, prevResult: a.result }, a);
    assert.is(check.status, 0, `bridge CHECK failed: ${describe(check)}`);
    assert.is(check.stdout.trim(), "", "CHECK prints nothing on success");

    // berth is really consulted: the same CHECK against a dataDir without the lease fails in berth.
    const empty = tempDir("berth-chain-empty-");
    try {
      const elsewhere = { ...conf, ipam: { ...conf.ipam, dataDir: empty.path }, prevResult: a.result };
      const bad = bridge("CHECK", elsewhere, a);
      assert.is.not(bad.status, 0, `CHECK with no lease should fail: ${describe(bad)}`);
      assert.match(String(bad.json?.msg), /lease for 10\.6\.168\.\d+ is gone/, `berth's error reaches the runtime: ${describe(bad)}`);
    } finally {
      empty.cleanup();
    }

    s.del(a, true);
  }));

test.run();
