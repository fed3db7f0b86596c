/**
 * Issue 17, windows 5, 6 and the pool finalizer of window 9, through
 * dist/berth on the test control plane:
 *
 * - a pool's multusName is judged on the NetworkAttachmentDefinition the
 *   pod's Multus annotations name for this interface, never on the network
 *   name the NAD's author chose; the node is the pod's, whatever ipam.nodeName says;
 * - STATUS answers from the node's own facts: no API request, no write;
 * - the first ADD into a pool without the finalizer puts it on, safely when
 *   ADDs race and when the write's answer is lost.
 *
 * Address range: 10.6.192.x (see cluster-env.ts). No controller runs here:
 * every finalizer seen is the plugin's.
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster nad-safety.test.ts
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { POOL_FINALIZER } from "../../plugin/kube/crd.ts";
import {
  apply,
  ClusterScope,
  claimOf,
  claimsOfPool,
  createNamespace,
  deletePool,
  getPool,
  PLUGIN_KUBECONFIG,
  patchPool,
  podArgs,
  podUid,
  poolManifest,
  type SimNode,
  waitFor,
} from "../support/cluster/cluster-env.ts";
import { APISERVER, TESTENV_DIR } from "../support/cluster/test-plane.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { tokenOf } from "../support/kube/kubeconfig-token.ts";

const NS = "berth-nad";
const P = {
  reserved: "nad-reserved", // 10.6.192.1-4, multusName kube-system/net-x
  bare: "nad-bare", // 10.6.192.11-14, multusName net-x (kube-system's)
  node: "nad-node", // 10.6.192.21-24
  fin: "nad-fin", // 10.6.192.31-34
  race: "nad-race", // 10.6.192.41-44
  lost: "nad-lost", // 10.6.192.51-54
} as const;
const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const DEFAULT_NETWORK = "v1.multus-cni.io/default-network";

const S = suite("cluster: NAD identity, STATUS, pool finalizer");
let scope: ClusterScope;
let node1: SimNode;
let node2: SimNode;
let token: string;

S.before(async () => {
  scope = new ClusterScope({ tag: "nad", namespaces: [NS], pools: Object.values(P) });
  try {
    await scope.removeStale();
    await createNamespace(NS);
    node1 = scope.node("node1");
    node2 = scope.node("node2");
    token = tokenOf(PLUGIN_KUBECONFIG);
    apply(poolManifest(P.reserved, { subnet: "10.6.0.0/16", ips: ["10.6.192.1-10.6.192.4"], multusName: ["kube-system/net-x"] }));
    apply(poolManifest(P.bare, { subnet: "10.6.0.0/16", ips: ["10.6.192.11-10.6.192.14"], multusName: ["net-x"] }));
    apply(poolManifest(P.node, { subnet: "10.6.0.0/16", ips: ["10.6.192.21-10.6.192.24"] }));
  } catch (err) {
    scope.cleanup();
    throw err;
  }
});

S.after(() => scope.cleanup());

let counter = 0;
const cid = () => randomBytes(32).toString("hex");
const ippool = (...v4: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4 }) });

/** A pod scheduled to `node` at creation; returns name and UID. */
function pod(annotations: Record<string, string>, node = "node1"): { name: string; uid: string } {
  const name = `nad-${++counter}`;
  apply(
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: NS, annotations },
      spec: { nodeName: node, containers: [{ name: "app", image: "nginx" }] },
    }),
  );
  return { name, uid: podUid(NS, name) };
}

/** ADD of `p` on `node` for interface `ifname` of a network called `network`. */
function add(p: { name: string; uid: string }, opts: { network: string; ifname: string; node?: SimNode; ipamExtra?: Record<string, unknown> }) {
  const n = opts.node ?? node1;
  return scope.berth("ADD", n, {
    containerId: cid(),
    ifname: opts.ifname,
    args: podArgs(NS, p.name, p.uid),
    stdin: { ...scope.berthConf(n, opts.ipamExtra), name: opts.network },
  });
}

const addr = (o: { json: any }) => (o.json.ips[0].address as string).split("/")[0];
const inRange = (address: string, first: number, last: number) => {
  const n = Number(address.split(".")[3]);
  return address.startsWith("10.6.192.") && n >= first && n <= last;
};

/** A kubeconfig file that reaches the API server through `proxy`, as the plugin. */
const viaProxy = (proxy: FaultProxy, name: string) => scope.proxiedKubeconfig(proxy, token, name);

async function withProxy(fn: (proxy: FaultProxy) => Promise<void>): Promise<void> {
  const proxy = await FaultProxy.start({ upstream: APISERVER, pkiDir: join(TESTENV_DIR, "pki") });
  try {
    await fn(proxy);
  } finally {
    proxy.release();
    await proxy.close();
  }
}

// ------------------------------------------------------------------ window 5: which NAD an ADD serves

S("multusName: a tenant's NAD whose network is called like kube-system's is refused (101, saying why); the pod naming kube-system/net-x gets the pool", () => {
  // The tenant's own NAD berth-nad/net-x, whose configuration names its network net-x too.
  for (const networks of [`${NS}/net-x`, "net-x", `[{"name": "net-x"}]`]) {
    const o = add(pod({ ...ippool(P.reserved), [NETWORKS]: networks }), { network: "net-x", ifname: "net1" });
    assert.is(o.json?.code, 101, `${networks}: ${o.stdout}`);
    assert.match(o.json.msg, `${P.reserved} is for networks kube-system/net-x, not ${NS}/net-x`);
    assert.match(o.json.msg, NETWORKS);
  }
  const owner = add(pod({ ...ippool(P.reserved), [NETWORKS]: "kube-system/net-x" }), { network: "net-x", ifname: "net1" });
  assert.is(owner.status, 0, owner.stdout);
  assert.ok(inRange(addr(owner), 1, 4), addr(owner));
  assert.is(claimOf(addr(owner))?.spec.pool, P.reserved);

  // A multusName entry without a namespace is kube-system's (Spiderpool's reading), not any namespace's.
  const tenant = add(pod({ ...ippool(P.bare), [NETWORKS]: `${NS}/net-x` }), { network: "net-x", ifname: "net1" });
  assert.is(tenant.json?.code, 101, tenant.stdout);
  assert.match(tenant.json.msg, `${P.bare} is for networks kube-system/net-x, not ${NS}/net-x`);
  const system = add(pod({ ...ippool(P.bare), [NETWORKS]: "kube-system/net-x" }), { network: "net-x", ifname: "net1" });
  assert.is(system.status, 0, system.stdout);
  assert.ok(inRange(addr(system), 11, 14), addr(system));
});

S(
  "multusName: the JSON form's interface decides; entries that cannot be told apart refuse (101, saying why); Multus' default-network annotation names eth0's NAD",
  () => {
    const json = JSON.stringify([{ name: "net-x", namespace: "kube-system", interface: "data0" }, { name: "mine" }]);
    const byIface = add(pod({ ...ippool(P.reserved), [NETWORKS]: json }), { network: "whatever-the-author-wrote", ifname: "data0" });
    assert.is(byIface.status, 0, `the entry asking for data0 is kube-system/net-x: ${byIface.stdout}`);
    assert.ok(inRange(addr(byIface), 1, 4), addr(byIface));
    const mine = add(pod({ ...ippool(P.reserved), [NETWORKS]: json }), { network: "net-x", ifname: "net2" });
    assert.is(mine.json?.code, 101, `net2 is the tenant's entry, even with its network called net-x: ${mine.stdout}`);

    const same = add(pod({ ...ippool(P.reserved), [NETWORKS]: `kube-system/net-x, ${NS}/net-x` }), { network: "net-x", ifname: "net1" });
    assert.is(same.json?.code, 101, same.stdout);
    assert.match(same.json.msg, "both name NAD net-x and neither asks for interface net1");
    const rival = add(pod({ ...ippool(P.reserved), [NETWORKS]: `kube-system/net-x, ${NS}/mine` }), { network: "net-x", ifname: "net2" });
    assert.is(rival.json?.code, 101, `the tenant's NAD mine may call its network net-x: ${rival.stdout}`);
    assert.match(rival.json.msg, `${NS}/mine (another namespace, no interface) could be the one this ADD serves`);

    const dflt = add(pod({ ...ippool(P.reserved), [DEFAULT_NETWORK]: "net-x", [NETWORKS]: `${NS}/net-x` }), { network: "net-x", ifname: "eth0" });
    assert.is(dflt.status, 0, `default-network net-x is kube-system/net-x on eth0: ${dflt.stdout}`);
    assert.ok(inRange(addr(dflt), 1, 4), addr(dflt));
  },
);

S("the node is the pod's: an ipam.nodeName naming another node is code 7 and takes nothing", () => {
  const p = pod(ippool(P.node), "node1");
  const o = add(p, { network: scope.network, ifname: "eth0", node: node2 });
  assert.is(o.json?.code, 7, o.stdout);
  for (const part of ["ipam.nodeName", '"node2"', `${NS}/${p.name}`, '"node1"']) assert.match(o.json.msg, part);
  assert.equal(claimsOfPool(P.node), [], "nothing claimed");
  const ok = add(p, { network: scope.network, ifname: "eth0", node: node1 });
  assert.is(ok.status, 0, ok.stdout);
  assert.is(claimOf(addr(ok))?.spec.node, "node1");
});

// ------------------------------------------------------------------ window 6: STATUS

/** STATUS (cniVersion 1.1.0) on `node` with an ipam block changed by `ipamExtra`. */
const status = (node: SimNode, ipamExtra: Record<string, unknown> = {}) =>
  scope.berth("STATUS", node, { stdin: { ...scope.berthConf(node, ipamExtra), cniVersion: "1.1.0" } } as never);

S("STATUS: ready while the API server is unreachable, sending no request, taking no write lock; a node that never allocated is ready", () =>
  withProxy(async (proxy) => {
    const kubeconfig = viaProxy(proxy, "status");
    // A node that has allocated: its database exists.
    const p = pod(ippool(P.node));
    const a = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid) });
    assert.is(a.status, 0, a.stdout);
    proxy.rule({ path: /./, action: "reset" });
    const down = status(node1, { kubeconfig });
    assert.is(down.status, 0, `API server unreachable: ${down.stdout}`);
    assert.is(down.stdout, "");
    assert.equal(proxy.log, [], "STATUS sent no request");

    const closed = join(scope.tempDir("closed"), "kubeconfig");
    writeFileSync(closed, proxy.kubeconfig(token).replace(proxy.url, "https://127.0.0.1:1"), { mode: 0o600 });
    assert.is(status(node1, { kubeconfig: closed }).status, 0, "a kubeconfig naming a closed port");

    // Another process holds the database's write lock (an ADD committing): STATUS reads, so it does not wait.
    const db = new Database(join(node1.dataDir, "berth.db"));
    try {
      db.exec("BEGIN IMMEDIATE");
      const locked = status(node1, { kubeconfig });
      assert.is(locked.status, 0, `write lock held elsewhere: ${locked.stdout}`);
      db.exec("ROLLBACK");
    } finally {
      db.close();
    }

    const fresh = join(scope.tempDir("fresh"), "not", "yet");
    const empty = status(node1, { kubeconfig, dataDir: fresh });
    assert.is(empty.status, 0, `no database yet: ${empty.stdout}`);
    assert.not.ok(existsSync(fresh), "STATUS creates nothing");
    assert.equal(proxy.log, [], "still no request");
  }),
);

S("STATUS: code 50 naming what is wrong when the kubeconfig is missing or unreadable or the database unreadable", () => {
  const dir = scope.tempDir("status-bad");
  const missing = status(node1, { kubeconfig: join(dir, "absent.kubeconfig") });
  assert.is(missing.json?.code, 50, missing.stdout);
  assert.match(missing.json.msg, "ipam.kubeconfig");
  assert.match(missing.json.msg, join(dir, "absent.kubeconfig"));
  assert.match(missing.json.msg, "ENOENT");

  const asDir = join(dir, "dir.kubeconfig");
  mkdirSync(asDir);
  const unreadable = status(node1, { kubeconfig: asDir });
  assert.is(unreadable.json?.code, 50, unreadable.stdout);
  assert.match(unreadable.json.msg, asDir);
  assert.match(unreadable.json.msg, "cannot read it");

  const broken = join(dir, "broken-data");
  mkdirSync(broken);
  writeFileSync(join(broken, "berth.db"), "this is not a database, it is long enough to have a header page of sorts ".repeat(20));
  const garbage = status(node1, { dataDir: broken });
  assert.is(garbage.json?.code, 50, garbage.stdout);
  assert.match(garbage.json.msg, `lease database ${join(broken, "berth.db")} is unreadable`);

  const blocked = status(node1, { dataDir: join(broken, "berth.db", "sub") });
  assert.is(blocked.json?.code, 50, blocked.stdout);
  assert.match(blocked.json.msg, "is not a directory");
});

// ------------------------------------------------------------------ window 9: the pool finalizer from the first ADD

const finalizersOf = (pool: string) => getPool(pool)?.metadata.finalizers ?? [];

/** Takes the finalizer off (no controller runs here to do it) and waits for a deleted pool to go. */
async function unfinalize(pool: string): Promise<void> {
  patchPool(pool, { metadata: { finalizers: null } });
  await waitFor(`pool ${pool} gone or without finalizers`, () => !getPool(pool)?.metadata.deletionTimestamp, 15_000);
}

S("pool finalizer: the first ADD puts it on a pool that lacks it; the pool, deleted, then stays while its claim exists and takes no new pod", async () => {
  apply(poolManifest(P.fin, { subnet: "10.6.0.0/16", ips: ["10.6.192.31-10.6.192.34"] }));
  try {
    assert.equal(finalizersOf(P.fin), [], "a fresh pool, no controller: no finalizer");
    const p = pod(ippool(P.fin));
    const a = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid) });
    assert.is(a.status, 0, a.stdout);
    assert.equal(finalizersOf(P.fin), [POOL_FINALIZER], "the ADD put the finalizer on");
    deletePool(P.fin);
    const deleting = getPool(P.fin);
    assert.ok(deleting?.metadata.deletionTimestamp, "the pool stays, Terminating, while its address is claimed");
    assert.is(claimOf(addr(a))?.spec.pool, P.fin);
    const q = pod(ippool(P.fin));
    const refused = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, q.name, q.uid) });
    assert.is(refused.json?.code, 101, `a deleting pool takes no new pod: ${refused.stdout}`);
  } finally {
    await unfinalize(P.fin);
  }
});

S("pool finalizer: two ADDs at once on a fresh pool both succeed, and it carries the finalizer exactly once", () =>
  withProxy(async (proxy) => {
    apply(poolManifest(P.race, { subnet: "10.6.0.0/16", ips: ["10.6.192.41-10.6.192.44"] }));
    const kubeconfig = viaProxy(proxy, "race");
    // Both ADDs read the pool without the finalizer; their writes are held until both are in, then race.
    proxy.rule({ method: "PATCH", path: new RegExp(`/spiderippools/${P.race}\\b`), action: "hold" });
    const a = pod(ippool(P.race));
    const b = pod(ippool(P.race));
    const runs = [a, b].map((p) => scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } }));
    try {
      await waitFor("both finalizer writes held", () => proxy.held() === 2, 20_000, 50);
    } finally {
      proxy.release();
    }
    const [ra, rb] = await Promise.all(runs);
    assert.is(ra.status, 0, ra.stdout);
    assert.is(rb.status, 0, rb.stdout);
    assert.is.not(addr(ra), addr(rb));
    assert.equal(finalizersOf(P.race), [POOL_FINALIZER], "one entry");
    const patches = proxy.log.filter((r) => r.method === "PATCH").map((r) => r.status);
    assert.equal(patches.sort(), [200, 409], "the loser's conditional write conflicted, and it read the pool again");
  }),
);

S("pool finalizer: the write's answer is lost; the ADD reads the pool back, finds it, succeeds; a later ADD writes nothing", () =>
  withProxy(async (proxy) => {
    apply(poolManifest(P.lost, { subnet: "10.6.0.0/16", ips: ["10.6.192.51-10.6.192.54"] }));
    const kubeconfig = viaProxy(proxy, "lost");
    proxy.rule({ method: "PATCH", path: new RegExp(`/spiderippools/${P.lost}\\b`), action: "drop-response", times: 1 });
    const p = pod(ippool(P.lost));
    const o = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig } });
    assert.is(o.status, 0, `${o.stdout}\n${scope.logTail(node1)}`);
    assert.is(proxy.faults().length, 1, "the write was done, its answer lost");
    assert.equal(finalizersOf(P.lost), [POOL_FINALIZER], "once");
    const afterFault = proxy.log.slice(proxy.log.findIndex((r) => r.fault));
    assert.ok(
      afterFault.some((r) => r.method === "GET" && r.path.includes(`/spiderippools/${P.lost}`)),
      "read back",
    );
    const writes = proxy.log.filter((r) => r.method === "PATCH").length;
    const q = pod(ippool(P.lost));
    const again = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, q.name, q.uid), ipamExtra: { kubeconfig } });
    assert.is(again.status, 0, again.stdout);
    assert.is(proxy.log.filter((r) => r.method === "PATCH").length, writes, "a pool that has the finalizer costs no write");
  }),
);

S.run();
