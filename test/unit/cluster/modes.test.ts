/** Retain-on-scale-down and ordinal-ordered addresses, on the in-memory API server. */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { clusterAdd } from "../../../plugin/cluster/cluster-add.ts";
import { clusterRelease } from "../../../plugin/cluster/cluster-release.ts";
import { parseNetConf } from "../../../plugin/cni/netconf.ts";
import { IpamError } from "../../../plugin/ipam/ipam-error.ts";
import { judgeClaim } from "../../../plugin/reconcile/judge-claim.ts";
import { createLogger } from "../../../plugin/support/logger.ts";
import { openBetterSqlite3 } from "../../../store/better-sqlite3-driver.ts";
import { LeaseStore } from "../../../store/lease-store.ts";
import { FakeKube } from "../../support/fake-kube.ts";

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
  k.statefulSets.set("default/db", { metadata: { name: "db", namespace: "default", uid: "s" }, spec: { replicas: 5 } });
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
  k.statefulSets.set("default/db", { metadata: { name: "db", namespace: "default", uid: "s" }, spec: { replicas: 5, ordinals: { start: 3 } } });
  member(k, 3, ann);
  k.claims.clear(); // start over: nothing claimed, nothing leased on this node
  ctx.store.immediate(() => ctx.store.db.exec("DELETE FROM leases"));
  assert.is(await add(ctx, 3), "10.6.1.10/16", "ordinals.start counts as position 0");
  // (kube-apiserver 1.20 prunes spec.ordinals, so this is proven here, on the in-memory API server.)
  // db-2 is below ordinals.start: it has no position. 0.4 counted backwards, to 10.6.1.9 (outside the pool's ips).
  const claimsBefore = k.claims.size;
  try {
    await add(ctx, 2);
    assert.unreachable("took an address for an ordinal below spec.ordinals.start");
  } catch (e) {
    assert.instance(e, IpamError);
    assert.is((e as IpamError).kind, "no-pool");
    assert.match((e as Error).message, "ordinal 2, below StatefulSet db's spec.ordinals.start 3");
  }
  assert.is(k.claims.size, claimsBefore, "nothing claimed");
});

t("membership counts only when the owner reference's UID is the live StatefulSet's", async (ctx) => {
  const { k } = ctx;
  const ann = { "ipam.berth.dev/ordinal-ips": "true" };
  k.statefulSets.set("default/db", { metadata: { name: "db", namespace: "default", uid: "s" }, spec: { replicas: 5 } });
  member(k, 0, ann);
  const a0 = await add(ctx, 0);
  assert.is(a0, "10.6.1.10/16");
  assert.is([...k.claims.values()][0].spec.statefulSet, "db", "a verified member's claim names its set");
  // The pod goes; a bare pod of the same name claims to be owned by the set, with a UID that is not the set's.
  k.pods.delete("default/db-0");
  k.addPod("default", "db-0", {
    annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["p", "q"]}', ...ann },
    ownerReferences: [{ apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "forged", controller: true }],
  });
  const forged = await add(ctx, 0);
  assert.is.not(forged, a0, "the forger does not get the member's binding");
  assert.ok(
    [...k.claims.values()].some((c) => c.spec.address === "10.6.1.10" && c.spec.statefulSet === "db"),
    "the member's binding is left to the controller, not released by the forger's ADD",
  );
  const forgedClaim = [...k.claims.values()].find((c) => `${c.spec.address}/16` === forged)!;
  assert.is(forgedClaim.spec.statefulSet, undefined, "the forger's claim names no set");
  const ep = k.endpoints.get("default/db-0")!.spec;
  assert.equal(
    [ep.ownerControllerType, ep.ownerControllerName, ep.ips.map((i) => i.ipv4)],
    ["StatefulSet", "db", [a0]],
    "the endpoint stays the member's: it is how the member finds its address again",
  );
});

t("Retain keeps a scaled-down ordinal's address (DEL and controller) until the StatefulSet is deleted", async (ctx) => {
  const { k } = ctx;
  k.statefulSets.set("default/db", {
    metadata: { name: "db", namespace: "default", uid: "s", annotations: { "ipam.berth.dev/reclaim": "Retain" } },
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

t("the controller's judgement: an address goes only when its holder can no longer use it", async (ctx) => {
  const { k } = ctx;
  k.addPod("default", "web", { annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["p"]}' } });
  await clusterAdd({ conf: conf(ctx.dir), containerId: "cw", ifname: "eth0", pod: { namespace: "default", name: "web" }, api: k, store: ctx.store, log });
  const claim = [...k.claims.values()][0];
  const opts = { addTimeoutMs: 30_000, graceMarginMs: 5000, now: Date.now() };
  assert.equal(await judgeClaim(k, claim, opts), { release: false, reason: "pod runs" });
  const pod = k.pods.get("default/web")!;
  pod.spec = { nodeName: "node1" };
  pod.metadata.deletionTimestamp = new Date(Date.now() + 20_000).toISOString();
  assert.equal(await judgeClaim(k, claim, opts), { release: false, reason: "terminating within its grace period" });
  // Past the grace period, on a Ready node: its DEL has not run, so it may still use the address. 0.4 released it.
  k.nodes.set("node1", { metadata: { name: "node1" }, status: { conditions: [{ type: "Ready", status: "True" }] } } as never);
  const stuck = await judgeClaim(k, claim, { ...opts, now: Date.now() + 60_000 });
  assert.is(stuck.release, false, "stuck Terminating on a Ready node: held");
  assert.is(!stuck.release && stuck.held, "terminating", "and reported");
  // Succeeded: a 1.20 kubelet writes the phase before it stops the sandbox. 0.4 released it at once.
  pod.metadata.deletionTimestamp = undefined;
  pod.status = { phase: "Succeeded" };
  const node = (kubeletVersion: string, containerRuntimeVersion: string) =>
    k.nodes.set("node1", {
      metadata: { name: "node1" },
      status: { conditions: [{ type: "Ready", status: "True" }], nodeInfo: { kubeletVersion, containerRuntimeVersion } },
    } as never);
  node("v1.20.2", "containerd://1.6.20");
  const done = await judgeClaim(k, claim, opts);
  assert.is(!done.release && done.held, "terminal", "Succeeded on a 1.20 kubelet: held until its DEL");
  node("v1.23.17", "containerd://1.6.20");
  assert.is((await judgeClaim(k, claim, opts)).release, false, "1.23: held");
  node("v1.28.3+k3s1", "cri-o://1.28.1");
  assert.is((await judgeClaim(k, claim, opts)).release, false, "a runtime berth has not checked: held");
  node("v1.28.3", "containerd://1.7.2");
  const stopped = await judgeClaim(k, claim, opts);
  assert.is(stopped.release && stopped.reason, "pod-terminated", "1.24+ with containerd writes the phase after StopPodSandbox (CNI DEL)");
  k.pods.delete("default/web");
  k.addPod("default", "web");
  const replaced = await judgeClaim(k, claim, opts);
  assert.is(replaced.release && replaced.reason, "pod-replaced");

  // A claim its endpoint does not list. Its age: since its last write by the server's clock (creation,
  // managedFields, and the controller's first sight), never the node's claimedAt.
  k.endpoints.clear();
  const written = Date.parse("2026-12-01T10:00:00Z");
  const unbound = {
    ...claim,
    metadata: { ...claim.metadata, creationTimestamp: "2026-12-01T09:00:00Z", managedFields: [{ manager: "berth", time: "2026-12-01T10:00:00Z" }] },
    spec: { ...claim.spec, claimedAt: "2026-12-01T08:00:00Z", addDeadlineSeconds: 45 },
  };
  assert.equal(await judgeClaim(k, unbound, { ...opts, now: written + 44_000 }), { release: false, reason: "ADD in progress" });
  const late = await judgeClaim(k, unbound, { ...opts, now: written + 47_000 });
  assert.is(late.release && late.reason, "half-finished-add", "never bound, its pod gone, its ADD over");
  const { addDeadlineSeconds: _, ...legacySpec } = unbound.spec;
  assert.equal(
    await judgeClaim(k, { ...unbound, spec: legacySpec }, { ...opts, now: written + 600_000 }),
    { release: false, reason: "ADD in progress" },
    "no recorded deadline (0.3 plugin): 615 s",
  );
  assert.is((await judgeClaim(k, { ...unbound, spec: legacySpec }, { ...opts, now: written + 617_000 })).release, true);

  // The same claim while its pod still exists (its endpoint lost, e.g. with its namespace): held, and the entry to be
  // written back. 0.4 judged it half-finished and released it.
  k.pods.set("default/web", { ...structuredClone(pod), metadata: { ...pod.metadata, uid: claim.spec.podUID }, status: { phase: "Running" } });
  const lost = await judgeClaim(k, unbound, { ...opts, now: written + 600_000 });
  assert.equal(
    { release: lost.release, held: !lost.release && lost.held, rebuild: !lost.release && lost.rebuild },
    {
      release: false,
      held: "endpoint-lost",
      rebuild: true,
    },
  );
  // ...and while its pod is Terminating, or Succeeded: still held.
  k.pods.get("default/web")!.metadata.deletionTimestamp = new Date(written).toISOString();
  assert.is((await judgeClaim(k, unbound, { ...opts, now: written + 600_000 })).release, false);
});

t("static pods: a mirror pod's deletion keeps the address; the node's deletion releases it", async (ctx) => {
  const { k } = ctx;
  const hash = "0123456789abcdef0123456789abcdef";
  const mirror = k.addPod("kube-system", "etcd-node1", {
    annotations: { "ipam.spidernet.io/ippool": '{"ipv4": ["p"]}', "kubernetes.io/config.mirror": hash },
  });
  mirror.spec = { nodeName: "node1" };
  k.nodes.set("node1", { metadata: { name: "node1" } });
  await clusterAdd({
    conf: conf(ctx.dir),
    containerId: "cs",
    ifname: "eth0",
    pod: { namespace: "kube-system", name: "etcd-node1", uid: hash },
    api: k,
    store: ctx.store,
    log,
  });
  const claim = [...k.claims.values()][0];
  assert.is(claim.spec.podUID, hash, "the claim records the kubelet's UID (the same for every mirror pod), not the mirror's");
  assert.is(claim.spec.staticPod, true);
  assert.is(k.endpoints.get("kube-system/etcd-node1")!.spec.podUID, hash);
  const opts = { addTimeoutMs: 30_000, graceMarginMs: 5000, now: Date.now() };
  // The mirror is deleted: the static pod keeps running. 0.4 released the address (pod-deleted).
  k.pods.delete("kube-system/etcd-node1");
  const gap = await judgeClaim(k, claim, opts);
  assert.is(!gap.release && gap.held, "static-pod");
  // The kubelet recreates the mirror: a new UID, the same hash. 0.4 released it as pod-replaced.
  k.addPod("kube-system", "etcd-node1", { annotations: { "kubernetes.io/config.mirror": hash } });
  assert.equal(await judgeClaim(k, claim, opts), { release: false, reason: "pod runs" });
  // The node is gone (and with it the mirror, deleted by the pod GC): released.
  k.pods.delete("kube-system/etcd-node1");
  k.nodes.delete("node1");
  const gone = await judgeClaim(k, claim, opts);
  assert.is(gone.release && gone.reason, "node-deleted");
});

t("a member's kept binding that its endpoint lost is written back; a claim its endpoint superseded goes", async (ctx) => {
  const { k } = ctx;
  k.statefulSets.set("default/db", { metadata: { name: "db", namespace: "default", uid: "s" }, spec: { replicas: 2 } });
  member(k, 1, {});
  await add(ctx, 1);
  const claim = [...k.claims.values()][0];
  const opts = { addTimeoutMs: 30_000, graceMarginMs: 5000, now: Date.now() + 3_600_000 };
  k.pods.delete("default/db-1");
  const ep = k.endpoints.get("default/db-1")!;
  k.endpoints.delete("default/db-1");
  const lost = await judgeClaim(k, claim, opts);
  assert.equal({ release: lost.release, rebuild: !lost.release && lost.rebuild }, { release: false, rebuild: true }, "kept, and its entry written back");
  // The endpoint binds eth0 to another address of the family: this claim was never the binding.
  ep.spec.ips = [{ ...ep.spec.ips[0], ipv4: "10.7.1.5/16", ipv4Pool: "q" }];
  k.endpoints.set("default/db-1", ep);
  const superseded = await judgeClaim(k, claim, opts);
  assert.is(superseded.release && superseded.reason, "half-finished-add");
});

t.run();
