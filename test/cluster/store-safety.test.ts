/**
 * The node database and the plugin's bounds (issue 17, window 9): a pending
 * lease left by a killed ADD expires once its ADD is over and no claim stands
 * behind it; a write to an object deleted meanwhile is "try again", not
 * "refused"; a DEL is bounded by timeoutSeconds, requests and database lock
 * wait included. Through dist/berth, the TLS fault proxy and the node's own
 * database file.
 *
 * Address range: 10.6.193.x (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster store-safety.test.ts
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Lease } from "../../store/rows.ts";
import { sql } from "../support/berth.ts";
import {
  admin,
  apply,
  bindPod,
  ClusterScope,
  claimNameOf,
  claimOf,
  createNamespace,
  deletePods,
  endpointOf,
  PLUGIN_KUBECONFIG,
  path,
  podArgs,
  podUid,
  poolManifest,
  type SimNode,
  waitForPod,
} from "../support/cluster/cluster-env.ts";
import { APISERVER, TESTENV_DIR } from "../support/cluster/test-plane.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { tokenOf } from "../support/kube/kubeconfig-token.ts";
import { logged } from "../support/log-lines.ts";

const NS = "berth-store";
const P = {
  killed: "store-killed", // 10.6.193.1
  held: "store-held", // 10.6.193.11
  member: "store-member", // 10.6.193.21
  gone: "store-gone", // 10.6.193.31
  slow: "store-slow", // 10.6.193.41
  locked: "store-locked", // 10.6.193.51
  active: "store-active", // 10.6.193.61
} as const;

const S = suite("cluster: node store and bounds");
let scope: ClusterScope;
let node1: SimNode;
let node2: SimNode;
let token: string;

S.before(async () => {
  scope = new ClusterScope({ tag: "store", namespaces: [NS], pools: Object.values(P) });
  try {
    await scope.removeStale();
    await createNamespace(NS);
    node1 = scope.node("node1");
    node2 = scope.node("node2");
    token = tokenOf(PLUGIN_KUBECONFIG);
    apply(poolManifest(P.killed, { subnet: "10.6.0.0/16", ips: ["10.6.193.1"] }));
    apply(poolManifest(P.held, { subnet: "10.6.0.0/16", ips: ["10.6.193.11"] }));
    apply(poolManifest(P.member, { subnet: "10.6.0.0/16", ips: ["10.6.193.21"] }));
    apply(poolManifest(P.gone, { subnet: "10.6.0.0/16", ips: ["10.6.193.31"] }));
    apply(poolManifest(P.slow, { subnet: "10.6.0.0/16", ips: ["10.6.193.41"] }));
    apply(poolManifest(P.locked, { subnet: "10.6.0.0/16", ips: ["10.6.193.51"] }));
    apply(poolManifest(P.active, { subnet: "10.6.0.0/16", ips: ["10.6.193.61"] }));
  } catch (err) {
    scope.cleanup();
    throw err;
  }
});

S.after(() => scope.cleanup());

const ippool = (v4: string[]) => ({ "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4 }) });
let counter = 0;

/** A plain pod on `node` naming pools; returns name and UID. */
function plainPod(annotations: Record<string, string>, node = "node1"): { name: string; uid: string } {
  const name = `p-${++counter}`;
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

function statefulSet(name: string, replicas: number, templateAnnotations: Record<string, string>): void {
  apply(
    JSON.stringify({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name, namespace: NS },
      spec: {
        serviceName: name,
        replicas,
        podManagementPolicy: "Parallel",
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name }, annotations: templateAnnotations }, spec: { containers: [{ name: "app", image: "nginx" }] } },
      },
    }),
  );
}

const cid = () => randomBytes(32).toString("hex");
const addr = (o: { json: any }) => (o.json.ips[0].address as string).split("/")[0];
const db = (node: SimNode) => join(node.dataDir, "berth.db");

const leasesOf = (node: SimNode, address: string) => sql<Lease>(db(node), `SELECT * FROM leases WHERE address = '${address}'`);

/** Makes a lease look as old as an ADD that ran an hour ago: time passing, without waiting for it. */
function age(node: SimNode, address: string): void {
  const r = spawnSync("sqlite3", [db(node), `UPDATE leases SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') WHERE address = '${address}'`], {
    encoding: "utf8",
  });
  assert.is(r.status, 0, `sqlite3: ${r.stderr}`);
}

/** An ADD killed (SIGKILL, BERTH_FAULT) at `fault`: it printed nothing. */
function killedAdd(node: SimNode, pod: { name: string; uid: string }, containerId: string, fault: "kill-after-pending" | "kill-after-claim") {
  scope.killedAdd(node, { ns: NS, ...pod }, containerId, fault);
}

/** A kubeconfig file that reaches the API server through `proxy`, as the plugin. */
const viaProxy = (proxy: FaultProxy, name: string) => scope.proxiedKubeconfig(proxy, token, name);

async function withProxy(fn: (proxy: FaultProxy) => Promise<void>): Promise<void> {
  const proxy = await FaultProxy.start({ upstream: APISERVER, pkiDir: join(TESTENV_DIR, "pki") });
  try {
    await fn(proxy);
  } finally {
    await proxy.close();
  }
}

// ------------------------------------------------------------------ a killed ADD's pending lease

S("an ADD killed after its pending lease: while its ADD may run the address stays off this node; past its deadline, with no claim, it is probed again", () => {
  const a = plainPod(ippool([P.killed]));
  const dead = cid();
  killedAdd(node1, a, dead, "kill-after-pending");
  assert.equal(
    leasesOf(node1, "10.6.193.1").map((l) => [l.container_id, l.state]),
    [[dead, "pending"]],
    "the killed ADD left a pending lease",
  );
  assert.is(claimOf("10.6.193.1"), undefined, "and no claim");

  // The kubelet retries with a new container ID (the dead one never gets its DEL). Young, the lease may be an ADD in flight.
  const young = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, a.name, a.uid) });
  assert.is(young.json?.code, 100, `a lease younger than its ADD's deadline is respected: ${young.stdout}`);
  assert.is(leasesOf(node1, "10.6.193.1").length, 1, "and kept");

  // Past its deadline (timeoutSeconds 30: 45 s; aged an hour here), with no claim behind it: the ADD is over.
  age(node1, "10.6.193.1");
  const retry = cid();
  const later = scope.berth("ADD", node1, { containerId: retry, args: podArgs(NS, a.name, a.uid) });
  assert.is(later.status, 0, `the address is probed again: ${later.stdout}\n${scope.logTail(node1)}`);
  assert.is(addr(later), "10.6.193.1");
  assert.equal(
    leasesOf(node1, "10.6.193.1").map((l) => [l.container_id, l.state]),
    [[retry, "active"]],
  );
  assert.is(claimOf("10.6.193.1")?.spec.containerID, retry);
  assert.is(
    logged(readFileSync(node1.logFile, "utf8"), "interrupted ADD's pending lease expired", { address: "10.6.193.1", container: dead, claim: "none" }).length,
    1,
    "one log line says which lease expired and why",
  );
});

S("a sandbox gone without its DEL, whose claim was released since: its active lease no longer keeps the address off this node", () => {
  const gone = plainPod(ippool([P.active]));
  const first = cid();
  const a = scope.berth("ADD", node1, { containerId: first, args: podArgs(NS, gone.name, gone.uid) });
  assert.is(a.status, 0, a.stdout);
  assert.is(addr(a), "10.6.193.61");
  // Its pod goes while node1 is cut off: no DEL ever reaches node1, and the controller releases the claim.
  deletePods(NS, [gone.name], { force: true });
  const claim = claimOf("10.6.193.61")!;
  admin.sync.delete(path("berthipclaims", { name: claim.metadata.name }));
  assert.equal(
    leasesOf(node1, "10.6.193.61").map((l) => [l.container_id, l.state]),
    [[first, "active"]],
    "node1 still leases the address to the sandbox that went",
  );
  // Another pod on node1 asks the (one-address) pool: 0.4 answered 100 for as long as the lease stayed.
  const next = plainPod(ippool([P.active]));
  const cNext = cid();
  const b = scope.berth("ADD", node1, { containerId: cNext, args: podArgs(NS, next.name, next.uid) });
  assert.is(b.status, 0, `the address is taken again: ${b.stdout}\n${scope.logTail(node1)}`);
  assert.is(addr(b), "10.6.193.61");
  assert.equal(
    leasesOf(node1, "10.6.193.61").map((l) => [l.container_id, l.state]),
    [[cNext, "active"]],
  );
  assert.is(
    logged(readFileSync(node1.logFile, "utf8"), "stale local lease dropped: its claim is gone or another pod's", {
      address: "10.6.193.61",
      container: first,
      claim: "none",
    }).length,
    1,
    "one log line says which lease was dropped and why",
  );
});

S("an old pending lease whose claim its own container still holds is kept, claim untouched (the controller judges it)", () => {
  const b = plainPod(ippool([P.held]));
  const dead = cid();
  killedAdd(node1, b, dead, "kill-after-claim");
  age(node1, "10.6.193.11");
  const before = claimOf("10.6.193.11")!;
  assert.is(before.spec.containerID, dead);
  const c = plainPod(ippool([P.held]));
  const other = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, c.name, c.uid) });
  assert.is(other.json?.code, 100, `the address is claimed: ${other.stdout}`);
  const after = claimOf("10.6.193.11")!;
  assert.equal([after.metadata.uid, after.spec.containerID], [before.metadata.uid, dead], "the claim is untouched");
  assert.equal(
    leasesOf(node1, "10.6.193.11").map((l) => [l.container_id, l.state]),
    [[dead, "pending"]],
    "the lease stays: the DEL or GC of its attachment undoes it",
  );
  // Its attachment's DEL (late, but it comes) gives it back.
  deletePods(NS, [b.name], { force: true });
  const del = scope.berth("DEL", node1, { containerId: dead, args: podArgs(NS, b.name, b.uid) });
  assert.is(del.status, 0, del.stdout);
  assert.is(claimOf("10.6.193.11"), undefined);
});

S("a StatefulSet member whose bound address this node keeps under another pod's old pending lease (no claim) gets it back", async () => {
  statefulSet("m", 1, ippool([P.member]));
  const pod = await waitForPod(NS, "m-0");
  bindPod(NS, "m-0", "node1");
  const first = cid();
  const a = scope.berth("ADD", node1, { containerId: first, args: podArgs(NS, "m-0", pod.metadata.uid) });
  assert.is(a.status, 0, a.stdout);
  assert.is(addr(a), "10.6.193.21");
  // The sandbox goes (the member keeps its binding), then its claim goes too (e.g. freed by hand).
  const del = scope.berth("DEL", node1, { containerId: first, args: podArgs(NS, "m-0", pod.metadata.uid) });
  assert.is(del.status, 0, del.stdout);
  assert.ok(
    endpointOf(NS, "m-0")?.spec.ips.some((i) => i.ipv4?.startsWith("10.6.193.21/")),
    "the binding stays",
  );
  admin.sync.delete(path("berthipclaims", { name: claimNameOf("10.6.193.21") }));
  // Another pod's ADD on this node takes the free address and is killed before its claim.
  const x = plainPod(ippool([P.member]));
  const dead = cid();
  killedAdd(node1, x, dead, "kill-after-pending");
  assert.equal(
    leasesOf(node1, "10.6.193.21").map((l) => l.container_id),
    [dead],
  );
  age(node1, "10.6.193.21");
  const back = scope.berth("ADD", node1, { containerId: cid(), args: podArgs(NS, "m-0", pod.metadata.uid) });
  assert.is(back.status, 0, `the member gets its address back: ${back.stdout}\n${scope.logTail(node1)}`);
  assert.is(addr(back), "10.6.193.21");
  assert.is(claimOf("10.6.193.21")?.spec.podName, "m-0");
});

// ------------------------------------------------------------------ 404 on a write

S("a claim or endpoint deleted between the read and the write (PUT answered 404 naming it) is a lost race: read again, not 109", () =>
  withProxy(async (proxy) => {
    statefulSet("g", 1, ippool([P.gone]));
    const pod = await waitForPod(NS, "g-0");
    bindPod(NS, "g-0", "node1");
    const a = await scope.berthAsync("ADD", node1, { containerId: cid(), args: podArgs(NS, "g-0", pod.metadata.uid) });
    assert.is(a.status, 0, a.stdout);
    const claim = claimNameOf("10.6.193.31");
    const notFound = (kind: string, name: string) => ({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `${kind}.ipam.berth.dev "${name}" not found`,
      reason: "NotFound",
      details: { name, group: "ipam.berth.dev", kind },
      code: 404,
    });
    // The new sandbox's re-take updates the claim, then the endpoint; each first write finds its object gone.
    proxy.rule({ method: "PUT", path: /\/berthipclaims\//, action: "answer", status: 404, body: notFound("berthipclaims", claim), times: 1 });
    proxy.rule({ method: "PUT", path: /\/berthendpoints\//, action: "answer", status: 404, body: notFound("berthendpoints", "g-0"), times: 1 });
    const sandbox = cid();
    const again = await scope.berthAsync("ADD", node1, {
      containerId: sandbox,
      args: podArgs(NS, "g-0", pod.metadata.uid),
      ipamExtra: { kubeconfig: viaProxy(proxy, "gone") },
    });
    assert.equal(
      proxy.faults().map((f) => `${f.method} ${f.path.split("?")[0].split("/").slice(-2, -1)[0]}`),
      ["PUT berthipclaims", "PUT berthendpoints"],
      "both writes met the 404",
    );
    assert.is(again.status, 0, `read again and wrote: ${again.stdout}\n${scope.logTail(node1)}`);
    assert.is(addr(again), "10.6.193.31");
    assert.is(claimOf("10.6.193.31")?.spec.containerID, sandbox);
    assert.is(endpointOf(NS, "g-0")?.spec.containerID, sandbox);
  }),
);

// ------------------------------------------------------------------ DEL's deadline

S("DEL is bounded by timeoutSeconds: requests that each fit but together do not end it with 11 naming the deadline, having written nothing", () =>
  withProxy(async (proxy) => {
    const p = plainPod(ippool([P.slow]));
    const sandbox = cid();
    const a = await scope.berthAsync("ADD", node1, { containerId: sandbox, args: podArgs(NS, p.name, p.uid) });
    assert.is(a.status, 0, a.stdout);
    deletePods(NS, [p.name], { force: true });
    // Every request takes 2 s; a DEL needs five or six of them, its budget is 3 s.
    proxy.rule({ path: /./, action: "delay", ms: 2000 });
    const kubeconfig = viaProxy(proxy, "slow");
    const del = await scope.berthAsync("DEL", node1, { containerId: sandbox, args: podArgs(NS, p.name, p.uid), ipamExtra: { kubeconfig, timeoutSeconds: 3 } });
    assert.is(del.json?.code, 11, `try again: ${del.stdout}`);
    assert.match(del.json.msg, "DEL gave up after 3 s (the network's timeoutSeconds)");
    // Each request waits 2 s at the proxy: within 3 s no more than two can start, and no write was among them.
    assert.ok(proxy.log.length >= 1 && proxy.log.length <= 2, `requests sent: ${JSON.stringify(proxy.log)}`);
    assert.equal(
      proxy.log.filter((r) => r.method !== "GET"),
      [],
      "no write was sent",
    );
    assert.is(claimOf("10.6.193.41")?.spec.containerID, sandbox, "the claim is still held");
    assert.equal(
      leasesOf(node1, "10.6.193.41").map((l) => l.container_id),
      [sandbox],
      "and the lease kept",
    );
    proxy.clear();
    const retry = await scope.berthAsync("DEL", node1, {
      containerId: sandbox,
      args: podArgs(NS, p.name, p.uid),
      ipamExtra: { kubeconfig, timeoutSeconds: 3 },
    });
    assert.is(retry.status, 0, retry.stdout);
    assert.is(claimOf("10.6.193.41"), undefined, "the runtime's retry releases it");
    assert.equal(leasesOf(node1, "10.6.193.41"), []);
  }),
);

S("DEL waits for the node database's lock only as long as timeoutSeconds leaves: 11 naming the deadline; the claim released stays released", async () => {
  const p = plainPod(ippool([P.locked]), "node2");
  const sandbox = cid();
  const a = scope.berth("ADD", node2, { containerId: sandbox, args: podArgs(NS, p.name, p.uid) });
  assert.is(a.status, 0, a.stdout);
  deletePods(NS, [p.name], { force: true });
  // Another process holds the write lock (as a stuck berth would) for as long as the DEL runs.
  const holder = new Database(db(node2));
  try {
    holder.exec("BEGIN IMMEDIATE");
    const del = await scope.berthAsync("DEL", node2, { containerId: sandbox, args: podArgs(NS, p.name, p.uid), ipamExtra: { timeoutSeconds: 2 } });
    assert.is(del.json?.code, 11, `try again: ${del.stdout}`);
    assert.match(del.json.msg, "DEL gave up after 2 s (the network's timeoutSeconds)");
    assert.match(del.json.msg, "locked");
    // Cut at its last step, the local commit: the claim is released, the lease (read through the lock holder) stays.
    assert.is(claimOf("10.6.193.51"), undefined, "the claim was released before the local commit");
    assert.equal(
      (holder.prepare("SELECT container_id FROM leases WHERE address = '10.6.193.51'").all() as { container_id: string }[]).map((l) => l.container_id),
      [sandbox],
    );
    holder.exec("ROLLBACK");
  } finally {
    holder.close();
  }
  const retry = scope.berth("DEL", node2, { containerId: sandbox, args: podArgs(NS, p.name, p.uid), ipamExtra: { timeoutSeconds: 2 } });
  assert.is(retry.status, 0, retry.stdout);
  assert.equal(leasesOf(node2, "10.6.193.51"), [], "the retry finds it released and drops the lease");
  assert.is(logged(readFileSync(node2.logFile, "utf8"), "address already released", { address: "10.6.193.51", container: sandbox }).length, 1);
});

S.run();
