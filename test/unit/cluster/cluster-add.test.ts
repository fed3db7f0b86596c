/** Cluster ADD/DEL logic against an in-memory API server and a real (better-sqlite3) node database. */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { clusterAdd } from "../../../plugin/cluster/cluster-add.ts";
import { clusterRelease } from "../../../plugin/cluster/cluster-release.ts";
import { parseNetConf } from "../../../plugin/cni/netconf.ts";
import { IpamError } from "../../../plugin/ipam/ipam-error.ts";
import { KubeConflictError } from "../../../plugin/kube/kube-errors.ts";
import { createLogger } from "../../../plugin/support/logger.ts";
import { openBetterSqlite3 } from "../../../store/better-sqlite3-driver.ts";
import { LeaseStore } from "../../../store/lease-store.ts";
import { FakeKube } from "../../support/fake-kube.ts";

const log = createLogger("error");
const t = suite<{ dir: string; k: FakeKube; stores: LeaseStore[] }>("cluster add/release");

t.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), "berth-cluster-unit-"));
  ctx.k = new FakeKube();
  ctx.k.addPool("test-ippool", { subnet: "10.6.0.0/16", ips: ["10.6.168.101-10.6.168.103"] });
  ctx.k.addPool("other-pool", { subnet: "10.7.0.0/16", ips: ["10.7.0.1-10.7.0.3"] });
  ctx.k.statefulSets.set("default/test-sts", { metadata: { name: "test-sts", namespace: "default", uid: "sts-uid" }, spec: { replicas: 2 } });
  ctx.stores = [];
});
t.after.each((ctx) => {
  for (const s of ctx.stores) s.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

function node(ctx: { dir: string; stores: LeaseStore[] }, name: string) {
  const conf = parseNetConf(
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "net",
      type: "macvlan",
      ipam: { type: "berth", kubeconfig: "/k", nodeName: name, dataDir: join(ctx.dir, name) },
    }),
  );
  const store = LeaseStore.open(openBetterSqlite3(join(ctx.dir, `${name}.db`)));
  ctx.stores.push(store);
  return { conf, store };
}

function stsPod(k: FakeKube, ordinal: number, pool = "test-ippool") {
  return k.addPod("default", `test-sts-${ordinal}`, {
    annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) },
    ownerReferences: [{ apiVersion: "apps/v1", kind: "StatefulSet", name: "test-sts", uid: "sts-uid", controller: true }],
  });
}

const addOn = async (k: FakeKube, n: ReturnType<typeof node>, podName: string, cid: string) => {
  const pod = k.pods.get(`default/${podName}`)!;
  const out = await clusterAdd({
    conf: n.conf,
    containerId: cid,
    ifname: "eth0",
    pod: { namespace: "default", name: podName, uid: pod.metadata.uid },
    api: k,
    store: n.store,
    log,
  });
  return (out.ips as { address: string }[])[0].address;
};
/** Claims counted against `pool` (the plugin keeps no pool counts: the controller does). */
const claimsOf = (k: FakeKube, pool: string) => [...k.claims.values()].filter((c) => c.spec.pool === pool).length;
const delOn = (k: FakeKube, n: ReturnType<typeof node>, cid: string, podName: string) =>
  clusterRelease(k, n.store, n.conf.ipam, { network: "net", containerId: cid, ifname: "eth0", pod: { namespace: "default", name: podName } }, log);

t("a StatefulSet pod keeps its address across UID, container and node; a late DEL of the old sandbox frees nothing", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  const n2 = node(ctx, "node2");
  stsPod(k, 0);
  const first = await addOn(k, n1, "test-sts-0", "c1");
  assert.is(claimsOf(k, "test-ippool"), 1);
  k.pods.delete("default/test-sts-0");
  stsPod(k, 0); // recreated: new UID
  const second = await addOn(k, n2, "test-sts-0", "c2");
  assert.is(second, first);
  await delOn(k, n1, "c1", "test-sts-0"); // the old node's DEL arrives late
  const claim = [...k.claims.values()][0];
  assert.is(claim.spec.containerID, "c2");
  assert.is(claim.spec.node, "node2");
  assert.is(k.claims.size, 1);
});

t("scale-down releases the ordinal beyond the range; a member in range keeps it", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  stsPod(k, 0);
  stsPod(k, 1);
  await addOn(k, n1, "test-sts-0", "c0");
  await addOn(k, n1, "test-sts-1", "c1");
  k.pods.get("default/test-sts-0")!.metadata.deletionTimestamp = "2026-11-26T00:00:00Z";
  await delOn(k, n1, "c0", "test-sts-0");
  assert.is(k.claims.size, 2, "deleted but in range: kept");
  k.statefulSets.get("default/test-sts")!.spec!.replicas = 1;
  k.pods.get("default/test-sts-1")!.metadata.deletionTimestamp = "2026-11-26T00:00:00Z";
  await delOn(k, n1, "c1", "test-sts-1");
  assert.equal(
    [...k.claims.values()].map((c) => c.spec.podName),
    ["test-sts-0"],
  );
  assert.not.ok(k.endpoints.has("default/test-sts-1"));
  assert.is(claimsOf(k, "test-ippool"), 1);
});

t("a changed pool annotation moves the pod and frees the old address", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  stsPod(k, 0);
  const before = await addOn(k, n1, "test-sts-0", "c1");
  await delOn(k, n1, "c1", "test-sts-0");
  k.pods.delete("default/test-sts-0");
  stsPod(k, 0, "other-pool");
  const after = await addOn(k, n1, "test-sts-0", "c2");
  assert.match(after, /^10\.7\.0\./);
  assert.not.ok([...k.claims.values()].some((c) => before.startsWith(`${c.spec.address}/`)));
  assert.is(claimsOf(k, "test-ippool"), 0);
  assert.is(claimsOf(k, "other-pool"), 1);
});

t("a plain pod's sandbox restart keeps its address; a new pod of the same name does not inherit it", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  k.addPod("default", "web", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["test-ippool"]}' } });
  const a = await addOn(k, n1, "web", "c1");
  await delOn(k, n1, "c1", "web"); // pod still alive, same UID
  assert.is(k.claims.size, 1);
  assert.is(await addOn(k, n1, "web", "c2"), a);
  // The pod is deleted and a new one of the same name appears before the DEL of the old sandbox.
  k.pods.delete("default/web");
  k.addPod("default", "web", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["test-ippool"]}' } });
  await addOn(k, n1, "web", "c3");
  assert.is(k.claims.size, 1, "the old incarnation's claim was released");
  await delOn(k, n1, "c2", "web");
  assert.is(k.claims.size, 1, "the old sandbox's DEL does not touch the new pod's claim");
});

t("steady state: no LIST of claims and no pool status write; stale hints cost conflicts, never a wrong 'exhausted'", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  const n2 = node(ctx, "node2");
  const lists = () => k.calls.filter((c) => c.startsWith("listClaims"));
  for (const p of ["a", "b", "c", "d", "e"]) k.addPod("default", p, { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["test-ippool"]}' } });
  await addOn(k, n1, "a", "c-a");
  assert.equal(lists(), ["listClaims test-ippool"], "a node LISTs a small pool once, before its first allocation there");
  await addOn(k, n2, "b", "c-b");
  assert.is(lists().length, 2, "node2's first allocation in the pool");
  // node1's hints do not know b's claim: at worst an AlreadyExists, never a LIST.
  await addOn(k, n1, "c", "c-c");
  k.pods.delete("default/c");
  await delOn(k, n1, "c-c", "c");
  await addOn(k, n1, "d", "c-d");
  assert.is(lists().length, 2, `no LIST once the node has its hints: ${lists().join(", ")}`);
  // The pool is full (a, b, d), and node1 knows b's claim (as from a conflict). node2 frees b; node1's
  // hints still say every address is taken: it LISTs (only then) and takes b rather than answer "exhausted".
  const b = [...k.claims.values()].find((c) => c.spec.podName === "b")!.spec.address;
  n1.store.immediate(() => n1.store.hints.set("test-ippool", b, true));
  k.pods.delete("default/b");
  await delOn(k, n2, "c-b", "b");
  const e = await addOn(k, n1, "e", "c-e");
  assert.is(lists().length, 3, "hints that know no free address are refreshed before anything is declared");
  assert.is(e, `${b}/16`);
  assert.is(claimsOf(k, "test-ippool"), 3);
  assert.not.ok(
    k.calls.some((c) => c.includes("fresh")),
    "no consistent (etcd) LIST on the plugin's path",
  );
});

t("conflicts are counted in the ADD's log; a new claim's hint is written with the activation, its pending lease marks it before", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  const n2 = node(ctx, "node2");
  for (const p of ["a", "b", "c"]) k.addPod("default", p, { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["test-ippool"]}' } });
  n2.store.cacheWrite(() => n2.store.hints.replace("test-ippool", [])); // node2 listed the pool while it was empty
  await addOn(k, n1, "a", "c-a");
  await addOn(k, n1, "b", "c-b");
  let refused = 0;
  const createClaim = k.createClaim.bind(k);
  k.createClaim = async (c) => {
    try {
      return await createClaim(c);
    } catch (e) {
      refused++;
      throw e;
    }
  };
  const hinted = (addr: string) => !!n2.store.db.prepare("SELECT 1 FROM claim_hints WHERE address = :addr").get({ addr });
  const createEndpoint = k.createEndpoint.bind(k);
  k.createEndpoint = async (e) => {
    const addr = e.spec.ips[0].ipv4!.split("/")[0];
    assert.not.ok(hinted(addr), "no hint write of its own between the create and the activation");
    assert.ok(n2.store.hints.hintedOrLeased("net", "test-ippool", addr), "the pending lease marks the address for this node's other ADDs");
    return createEndpoint(e);
  };
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const capture = (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, fields });
  // The scan starts at the pool's first address: it meets every claimed one before the free one.
  const claimed = new Set([...k.claims.values()].map((c) => c.spec.address));
  const free = ["10.6.168.101", "10.6.168.102", "10.6.168.103"].findIndex((a) => !claimed.has(a));
  const random = Math.random;
  Math.random = () => 0;
  const out = await clusterAdd({
    conf: n2.conf,
    containerId: "c-c",
    ifname: "eth0",
    pod: { namespace: "default", name: "c", uid: k.pods.get("default/c")!.metadata.uid },
    api: k,
    store: n2.store,
    log: { debug: capture, info: capture, warn: capture, error: capture },
  }).finally(() => {
    Math.random = random;
  });
  assert.is(refused, free, "one AlreadyExists per claimed address before the free one");
  const assigned = lines.find((l) => l.msg === "address assigned");
  assert.is(assigned?.fields?.conflicts, refused, `the log line counts the AlreadyExists met (${refused})`);
  const addr = (out.ips as { address: string }[])[0].address.split("/")[0];
  assert.is(addr, `10.6.168.${101 + free}`);
  assert.ok(hinted(addr), "the activation wrote the hint");
});

t("exhaustion: a clear error and nothing left behind", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  for (const p of ["a", "b", "c", "d"]) k.addPod("default", p, { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["test-ippool"]}' } });
  for (const p of ["a", "b", "c"]) await addOn(k, n1, p, `c-${p}`);
  try {
    await addOn(k, n1, "d", "c-d");
    assert.unreachable();
  } catch (e) {
    assert.instance(e, IpamError);
    assert.is((e as IpamError).kind, "exhausted");
    assert.match((e as Error).message, "IPv4 pool test-ippool exhausted (3 of 3 claimed)");
  }
  assert.not.ok(k.endpoints.has("default/d"));
  assert.is(n1.store.leasesOf("net", "c-d", "eth0").length, 0);
});

t("a failure after the claim rolls it back; an interrupted ADD is undone by the next one", async (ctx) => {
  const { k } = ctx;
  const n1 = node(ctx, "node1");
  k.addPod("default", "p", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["test-ippool"]}' } });
  const createEndpoint = k.createEndpoint.bind(k);
  k.createEndpoint = async () => {
    throw new Error("boom");
  };
  try {
    await addOn(k, n1, "p", "c1");
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, "boom");
  }
  assert.is(k.claims.size, 0, "claim rolled back");
  k.createEndpoint = createEndpoint;
  // Crash simulation: a pending lease whose claim was created, then the process died.
  await addOn(k, n1, "p", "c2");
  const claim = [...k.claims.values()][0];
  n1.store.immediate(() => n1.store.db.exec("UPDATE leases SET state = 'pending'"));
  k.endpoints.clear();
  const again = await addOn(k, n1, "p", "c2");
  assert.is(k.claims.size, 1);
  assert.ok(again.startsWith("10.6.168."));
  assert.is.not([...k.claims.values()][0].metadata.uid, claim.metadata.uid, "the interrupted claim was deleted, a new one made");
});

/** Runs `fn` while recording the delays of short timers (a back-off; the ADD's own deadline timer is longer). */
async function shortWaits<T>(fn: () => Promise<T>): Promise<{ out: T; waits: number[] }> {
  const waits: number[] = [];
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((cb: () => void, ms?: number, ...rest: unknown[]) => {
    if (ms !== undefined && ms > 0 && ms < 1000) waits.push(ms);
    return real(cb, ms, ...rest);
  }) as typeof setTimeout;
  try {
    return { out: await fn(), waits };
  } finally {
    globalThis.setTimeout = real;
  }
}

/** The next `n` claim creates are refused as if each address had been taken long ago. */
function refuseCreates(k: FakeKube, n: number): { refused: () => number } {
  let refused = 0;
  const createClaim = k.createClaim.bind(k);
  k.createClaim = async (c) => {
    if (refused < n) {
      refused++;
      throw new KubeConflictError(`berthipclaims "${c.metadata.name}" already exists`);
    }
    return createClaim(c);
  };
  return { refused: () => refused };
}

t("a large pool's random probes do not wait after a conflict; a small pool's scan does", async (ctx) => {
  const { k } = ctx;
  k.addPool("big-pool", { subnet: "10.8.0.0/16", ips: ["10.8.0.1-10.8.31.254"] }); // 8,190 addresses: probed, never LISTed first
  const n1 = node(ctx, "node1");
  const add = (pod: string, cid: string) =>
    clusterAdd({
      conf: n1.conf,
      containerId: cid,
      ifname: "eth0",
      pod: { namespace: "default", name: pod, uid: k.pods.get(`default/${pod}`)!.metadata.uid },
      api: k,
      store: n1.store,
      log,
    });

  k.addPod("default", "big", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["big-pool"]}' } });
  const big = refuseCreates(k, 9); // ~what an ADD meets at 90% full
  const probed = await shortWaits(() => add("big", "c-big"));
  assert.is(big.refused(), 9);
  assert.ok((probed.out.ips as { address: string }[])[0].address.startsWith("10.8."));
  assert.equal(probed.waits, [], "no back-off between random probes");

  k.addPod("default", "small", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["test-ippool"]}' } });
  const small = refuseCreates(k, 2);
  const random = Math.random;
  Math.random = () => 0.999; // every jittered wait near its ceiling
  const scanned = await shortWaits(() => add("small", "c-small")).finally(() => {
    Math.random = random;
  });
  assert.is(small.refused(), 2);
  assert.is(scanned.waits.length, 2, `one back-off per conflict in a scanned pool (${scanned.waits.join(", ")} ms)`);
});

t.run();
