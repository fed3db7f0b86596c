/** Retain-on-scale-down and ordinal-ordered addresses, on the in-memory API server. */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clusterAdd } from "../../../plugin/cluster/cluster-add.ts";
import { clusterRelease } from "../../../plugin/cluster/cluster-release.ts";
import { parseNetConf } from "../../../plugin/cni/netconf.ts";
import { judgeClaim } from "../../../plugin/controller/judge-claim.ts";
import { IpamError } from "../../../plugin/ipam/ipam-error.ts";
import { createLogger } from "../../../plugin/support/logger.ts";
import { openBetterSqlite3 } from "../../../store/better-sqlite3-driver.ts";
import { LeaseStore } from "../../../store/lease-store.ts";
import { FakeKube } from "./fake-kube.ts";

const log = createLogger("error");
const t = suite<{ dir: string; k: FakeKube; store: LeaseStore }>("modes");
t.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), "berth-modes-"));
  ctx.k = new FakeKube();
  ctx.k.addPool("p", { subnet: "10.6.0.0/16", ips: ["10.6.1.10-10.6.1.12"] });
  ctx.k.addPool("q", { subnet: "10.7.0.0/16", ips: ["10.7.1.1-10.7.1.5"] });
  ctx.store = LeaseStore.open(openBetterSqlite3(join(ctx.dir, "n.db")));
});
t.after.each((ctx) => {
  ctx.store.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

const conf = (dir: string) =>
  parseNetConf(
    JSON.stringify({ cniVersion: "1.0.0", name: "net", type: "macvlan", ipam: { type: "berth", kubeconfig: "/k", nodeName: "node1", dataDir: dir } }),
  );
function member(k: FakeKube, ordinal: number, annotations: Record<string, string>) {
  return k.addPod("default", `db-${ordinal}`, {
    annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["p", "q"]}', ...annotations },
    ownerReferences: [{ apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "s", controller: true }],
  });
}
async function add(ctx: { dir: string; k: FakeKube; store: LeaseStore }, ordinal: number) {
  const pod = ctx.k.pods.get(`default/db-${ordinal}`)!;
  const out = await clusterAdd({
    conf: conf(ctx.dir),
    containerId: `c${ordinal}-${pod.metadata.uid}`,
    ifname: "eth0",
    pod: { namespace: "default", name: pod.metadata.name, uid: pod.metadata.uid },
    api: ctx.k,
    store: ctx.store,
    log,
  });
  return (out.ips as { address: string }[])[0].address;
}

t("ordinal-ips: pod N gets the Nth address, spilling into the next pool; a taken one is an error", async (ctx) => {
  const { k } = ctx;
  k.statefulSets.set("default/db", { metadata: { name: "db", namespace: "default" }, spec: { replicas: 5 } });
  const ann = { "ipam.berth.dev/ordinal-ips": "true" };
  for (const n of [2, 0, 4]) member(k, n, ann);
  assert.is(await add(ctx, 2), "10.6.1.12/16");
  assert.is(await add(ctx, 0), "10.6.1.10/16");
  assert.is(await add(ctx, 4), "10.7.1.2/16", "index 4 = second address of the next pool");
  k.addPod("default", "intruder", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["p"]}' } });
  await clusterAdd({ conf: conf(ctx.dir), containerId: "ci", ifname: "eth0", pod: { namespace: "default", name: "intruder" }, api: k, store: ctx.store, log });
  member(k, 1, ann);
  try {
    await add(ctx, 1);
    assert.unreachable("took a substitute address");
  } catch (e) {
    assert.instance(e, IpamError);
    assert.match((e as Error).message, "10.6.1.11 (position 1 of pool p, for ordinal-ordered pod default/db-1) is claimed by pod default/intruder");
  }
  k.statefulSets.set("default/db", { metadata: { name: "db", namespace: "default" }, spec: { replicas: 5, ordinals: { start: 3 } } });
  member(k, 3, ann);
  k.claims.clear(); // start over: nothing claimed, nothing leased on this node
  ctx.store.immediate(() => ctx.store.db.exec("DELETE FROM leases"));
  assert.is(await add(ctx, 3), "10.6.1.10/16", "ordinals.start counts as position 0");
});

t("Retain keeps a scaled-down ordinal's address (DEL and controller) until the StatefulSet is deleted", async (ctx) => {
  const { k } = ctx;
  k.statefulSets.set("default/db", {
    metadata: { name: "db", namespace: "default", annotations: { "ipam.berth.dev/reclaim": "Retain" } },
    spec: { replicas: 1 },
  });
  member(k, 0, {});
  member(k, 1, {});
  await add(ctx, 0);
  const a1 = await add(ctx, 1);
  // Scale down to 1: db-1 goes away.
  k.pods.get("default/db-1")!.metadata.deletionTimestamp = "2026-11-26T00:00:00Z";
  await clusterRelease(
    k,
    ctx.store,
    conf(ctx.dir).ipam,
    { network: "net", containerId: ctx.store.listLeases().find((l) => l.pod_name === "db-1")!.container_id, ifname: "eth0" },
    log,
  );
  k.pods.delete("default/db-1");
  assert.is(k.claims.size, 2, "DEL kept the retained address");
  const claim = [...k.claims.values()].find((c) => c.spec.podName === "db-1")!;
  const opts = { addTimeoutMs: 30_000, graceMarginMs: 5000, now: Date.now() };
  assert.equal(await judgeClaim(k, claim, opts), { release: false, reason: "retained by ipam.berth.dev/reclaim" });
  // Scale up again: db-1 returns to its old address.
  member(k, 1, {});
  assert.is(await add(ctx, 1), a1);
  // The StatefulSet is deleted: everything goes.
  k.statefulSets.delete("default/db");
  k.pods.delete("default/db-1");
  const verdict = await judgeClaim(k, [...k.claims.values()].find((c) => c.spec.podName === "db-1")!, opts);
  assert.is(verdict.release && verdict.reason, "statefulset-deleted");
});

t("the controller's judgement: runs, replaced, terminated, half-finished", async (ctx) => {
  const { k } = ctx;
  k.addPod("default", "web", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["p"]}' } });
  await clusterAdd({ conf: conf(ctx.dir), containerId: "cw", ifname: "eth0", pod: { namespace: "default", name: "web" }, api: k, store: ctx.store, log });
  const claim = [...k.claims.values()][0];
  const opts = { addTimeoutMs: 30_000, graceMarginMs: 5000, now: Date.now() };
  assert.equal(await judgeClaim(k, claim, opts), { release: false, reason: "pod runs" });
  k.pods.get("default/web")!.metadata.deletionTimestamp = new Date(Date.now() + 20_000).toISOString();
  assert.not.ok((await judgeClaim(k, claim, opts)).release, "terminating within its grace period: still in use");
  // Past the grace period: released only when its node is Ready (the pod may still run on a node cut off).
  assert.equal(await judgeClaim(k, claim, { ...opts, now: Date.now() + 60_000 }), {
    release: false,
    reason: "terminating on node node1, which is not found: it may still run there",
  });
  k.nodes.set("node1", { metadata: { name: "node1" }, status: { conditions: [{ type: "Ready", status: "Unknown" }] } } as never);
  assert.not.ok((await judgeClaim(k, claim, { ...opts, now: Date.now() + 60_000 })).release, "past the grace period on a node whose Ready is Unknown: kept");
  assert.is(
    (await judgeClaim(k, claim, { ...opts, now: Date.now() + 60_000, releaseTerminatingOnUnreadyNodes: true })).release,
    true,
    "unless --release-terminating-on-unready-nodes",
  );
  k.nodes.set("node1", { metadata: { name: "node1" }, status: { conditions: [{ type: "Ready", status: "True" }] } } as never);
  assert.is((await judgeClaim(k, claim, { ...opts, now: Date.now() + 60_000 })).release, true, "past the grace period on a Ready node");
  k.pods.get("default/web")!.metadata.deletionTimestamp = undefined;
  k.pods.get("default/web")!.status = { phase: "Succeeded" };
  const done = await judgeClaim(k, claim, opts);
  assert.is(done.release && done.reason, "pod-terminated");
  k.pods.delete("default/web");
  k.addPod("default", "web");
  const replaced = await judgeClaim(k, claim, opts);
  assert.is(replaced.release && replaced.reason, "pod-replaced");
  // A claim never bound to an endpoint: in progress until max(ADD timeout, its recorded deadline) after its
  // last write by the server's clock (creation, managedFields), then half-finished; claimedAt (the node's clock) is ignored.
  k.endpoints.clear();
  const written = Date.parse("2026-12-01T10:00:00Z");
  const unbound = {
    ...claim,
    metadata: { ...claim.metadata, creationTimestamp: "2026-12-01T09:00:00Z", managedFields: [{ manager: "berth", time: "2026-12-01T10:00:00Z" }] },
    spec: { ...claim.spec, claimedAt: "2026-12-01T08:00:00Z", addDeadlineSeconds: 45 },
  };
  assert.equal(await judgeClaim(k, unbound, { ...opts, now: written + 44_000 }), { release: false, reason: "ADD in progress" });
  const late = await judgeClaim(k, unbound, { ...opts, now: written + 47_000 });
  assert.is(late.release && late.reason, "half-finished-add");
  const { addDeadlineSeconds: _, ...legacySpec } = unbound.spec;
  assert.equal(
    await judgeClaim(k, { ...unbound, spec: legacySpec }, { ...opts, now: written + 600_000 }),
    { release: false, reason: "ADD in progress" },
    "no recorded deadline (0.3 plugin): 615 s",
  );
  assert.is((await judgeClaim(k, { ...unbound, spec: legacySpec }, { ...opts, now: written + 617_000 })).release, true);
});

t.run();
