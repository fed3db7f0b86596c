/**
 * StatefulSet membership is a fact of the member, not of the last ADD
 * (issue 17, windows 3 and 8), through dist/berth and `berth controller`:
 *
 * - a member on two networks, one that keeps members' addresses and one that
 *   does not (`enableStatefulSet: false`), in either order of ADD: one
 *   network's ADD or DEL never touches the other's binding, and the
 *   endpoint's owner is the pod's membership whatever the network;
 * - a pod orphaned (`kubectl delete sts --cascade=orphan`) and adopted again
 *   by the re-created set keeps its binding through a sandbox restart;
 * - a pod counts as a member only when its controller owner reference names
 *   the live set's UID: a bare pod with a forged reference, named like a
 *   member whose binding is kept, gets an address of its own;
 * - a member never insists on a bound address whose claim another pod holds.
 *
 * The Kubernetes side is played by hand as admin: each StatefulSet's pod
 * template is one the API server refuses (its ServiceAccount does not
 * exist), so the StatefulSet controller never creates a pod, and the tests
 * create each incarnation themselves with the set's controller owner
 * reference (a new UID each time, as the StatefulSet controller does). The
 * kube-controller-manager's garbage collector and StatefulSet controller do
 * act: they orphan the pods of a set deleted with propagationPolicy Orphan,
 * and adopt them into the re-created set. berth's side is real: each ADD and
 * DEL is dist/berth as a process on a simulated node, with its own
 * ServiceAccount, as Multus calls it for each network (one sandbox, one
 * interface per network).
 *
 * Address range: 10.6.191.128-250 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster membership.test.ts
 */
import { randomBytes, randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { EndpointSpec } from "../../plugin/kube/kube-api.ts";
import type { Outcome } from "../support/berth.ts";
import {
  admin,
  apply,
  type ClusterScope,
  claimOf,
  deletePod,
  endpointOf,
  patchPool,
  path,
  podArgs,
  podOf,
  poolManifest,
  type SimNode,
  startDeletion,
  statefulSetManifest,
  waitFor,
  withCluster,
} from "../support/cluster/cluster-env.ts";
import { sleep, startController, withControllers } from "../support/cluster/controller-env.ts";

const S = suite("cluster: StatefulSet membership");
const api = admin.sync;
const SUBNET = "10.6.0.0/16";

const cid = () => randomBytes(32).toString("hex");
const addr = (o: Outcome) => (o.json.ips[0].address as string).split("/")[0];

/** One berth network of the pod, as Multus calls it: its netconf name, pool and interface. */
interface Net {
  name: string;
  ifname: string;
  conf: Record<string, unknown>;
}

/** A network `name` drawing from `pool` on `ifname`; `sticky: false` is `enableStatefulSet: false`. */
function network(c: ClusterScope, node: SimNode, name: string, pool: string, ifname: string, sticky: boolean, extra: Record<string, unknown> = {}): Net {
  const ipam = c.ipam(node, { default_ipv4_ippool: [pool], ...(sticky ? {} : { enableStatefulSet: false }), ...extra });
  return { name, ifname, conf: { cniVersion: "1.0.0", name, type: "berth", ipam } };
}

/** The runtime's CNI call for one network of pod NS/NAME (incarnation `uid`) in sandbox `sandbox`. */
function call(c: ClusterScope, node: SimNode, command: "ADD" | "DEL", net: Net, ns: string, name: string, uid: string, sandbox: string): Outcome {
  return c.berth(command, node, { stdin: net.conf, ifname: net.ifname, containerId: sandbox, args: podArgs(ns, name, uid) });
}

/** call() that must succeed. */
function must(c: ClusterScope, node: SimNode, command: "ADD" | "DEL", net: Net, ns: string, name: string, uid: string, sandbox: string): Outcome {
  const o = call(c, node, command, net, ns, name, uid, sandbox);
  assert.is(o.status, 0, `${command} of ${ns}/${name} on ${net.name} (${net.ifname}): ${o.stdout} ${o.stderr}\n${c.logTail(node)}`);
  return o;
}

/**
 * StatefulSet NS/NAME whose pods the tests make (its template is refused);
 * returns its UID. OnDelete: the StatefulSet controller deletes no pod.
 */
function statefulSet(ns: string, name: string, replicas: number): string {
  return api.create(path("statefulsets", { ns }), statefulSetManifest(ns, name, replicas, { handMadePods: true })).metadata.uid;
}

/**
 * Pod NS/<set>-<ordinal> on `node` whose controller owner reference names
 * StatefulSet `set` with UID `ownerUid` (the set's, as its controller
 * writes it; anything else is a forgery). Returns its UID.
 */
function setPod(ns: string, set: string, ownerUid: string, ordinal: number, node: string): string {
  const pod = api.create(path("pods", { ns }), {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${set}-${ordinal}`,
      namespace: ns,
      labels: { app: set },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "StatefulSet", name: set, uid: ownerUid, controller: true, blockOwnerDeletion: true }],
    },
    spec: { nodeName: node, containers: [{ name: "app", image: "nginx" }] },
  });
  return pod.metadata.uid;
}

/** Deletes pod NS/NAME at once (no DEL runs: its node is gone, or the DEL comes later) and waits until it is gone. */
async function podGone(ns: string, name: string): Promise<void> {
  deletePod(ns, name);
  await waitFor(`pod ${ns}/${name} to be gone`, () => !podOf(ns, name), 10_000, 100);
}

/** A BerthEndpoint's spec (with the 0.5 per-entry fields, network and podUID). */
function endpointSpec(ns: string, name: string): EndpointSpec | undefined {
  return endpointOf(ns, name)?.spec;
}

/** "ifname address" of each entry, sorted. */
function entries(ns: string, name: string): string[] {
  return (endpointSpec(ns, name)?.ips ?? []).map((i) => `${i.interface} ${i.ipv4?.split("/")[0]}`).sort();
}

// ---------------------------------------------------------------- window 3a

for (const dels of [false, true]) {
  const ns = dels ? "berth-member-3a-del" : "berth-member-3a";
  const P = dels ? { plain: "member-3a-del-plain", sticky: "member-3a-del-sticky" } : { plain: "member-3a-plain", sticky: "member-3a-sticky" };
  S(
    `3a: a member on a plain and a sticky network, recreated${dels ? " after both DELs ran" : " without a DEL"}, the plain network ADDed first: the sticky network gets its address back`,
    () =>
      withCluster({ tag: dels ? "mem3ad" : "mem3a", namespaces: [ns], pools: Object.values(P), chain: false }, async (c) => {
        const base = dels ? 135 : 130;
        apply(poolManifest(P.plain, { subnet: SUBNET, ips: [`10.6.191.${base}-10.6.191.${base + 1}`] }));
        apply(poolManifest(P.sticky, { subnet: SUBNET, ips: [`10.6.191.${base + 2}-10.6.191.${base + 3}`] }));
        const node = c.node("node1");
        const plain = network(c, node, "member-plain", P.plain, "net1", false);
        const sticky = network(c, node, "member-sticky", P.sticky, "net2", true);
        const setUid = statefulSet(ns, "db", 1);

        const u1 = setPod(ns, "db", setUid, 0, "node1");
        const sandbox1 = cid();
        const plainOld = addr(must(c, node, "ADD", plain, ns, "db-0", u1, sandbox1));
        const x = addr(must(c, node, "ADD", sticky, ns, "db-0", u1, sandbox1));
        assert.is(claimOf(x)?.spec.statefulSet, "db", "the sticky network's claim names the set");
        assert.is(claimOf(plainOld)?.spec.statefulSet, undefined, "the plain network's claim does not");

        if (dels) {
          // The kubelet tears the pod down: both networks' DELs while it is Terminating, then the object goes.
          startDeletion(ns, "db-0");
          must(c, node, "DEL", sticky, ns, "db-0", u1, sandbox1);
          must(c, node, "DEL", plain, ns, "db-0", u1, sandbox1);
          assert.is(claimOf(x)?.spec.podUID, u1, "the sticky DEL kept the member's binding");
          assert.is(claimOf(plainOld), undefined, "the plain DEL freed its address");
        }
        await podGone(ns, "db-0");

        // The StatefulSet controller's new incarnation; Multus happens to call the plain network first.
        const u2 = setPod(ns, "db", setUid, 0, "node1");
        const sandbox2 = cid();
        const plainNew = addr(must(c, node, "ADD", plain, ns, "db-0", u2, sandbox2));
        const kept = claimOf(x);
        assert.ok(kept, `the plain network's ADD left the sticky network's claim of ${x} alone\n${c.logTail(node)}`);
        assert.is(kept!.spec.podUID, u1, "still the earlier incarnation's, for the sticky network to take over");
        assert.is(kept!.spec.interface, "net2");
        if (!dels) assert.is(claimOf(plainOld)?.spec.podUID === u1, false, "the earlier incarnation's plain address was freed (its own interface)");

        const back = must(c, node, "ADD", sticky, ns, "db-0", u2, sandbox2);
        assert.is(addr(back), x, "the sticky network gets its old address back");
        assert.is(claimOf(x)?.spec.podUID, u2);
        assert.is(claimOf(x)?.spec.statefulSet, "db");
        assert.is(claimOf(plainNew)?.spec.podUID, u2);
        assert.equal(entries(ns, "db-0"), [`net1 ${plainNew}`, `net2 ${x}`].sort());
        const ep = endpointSpec(ns, "db-0")!;
        assert.equal([ep.ownerControllerType, ep.ownerControllerName], ["StatefulSet", "db"]);
        assert.equal(
          ep.ips.map((i) => `${i.interface} ${i.network} ${i.podUID}`).sort(),
          [`net1 member-plain ${u2}`, `net2 member-sticky ${u2}`],
          "each entry names its network and the incarnation it was taken for",
        );
      }),
  );
}

// ---------------------------------------------------------------- window 3b

const NS_3B = "berth-member-3b";
const P_3B = { plain: "member-3b-plain", sticky: "member-3b-sticky" };

S("3b: sticky network ADDed first, then the plain one; the sticky DEL after the pod object is gone keeps the binding", () =>
  withCluster({ tag: "mem3b", namespaces: [NS_3B], pools: Object.values(P_3B), chain: false }, async (c) => {
    const ns = NS_3B;
    apply(poolManifest(P_3B.plain, { subnet: SUBNET, ips: ["10.6.191.140-10.6.191.141"] }));
    apply(poolManifest(P_3B.sticky, { subnet: SUBNET, ips: ["10.6.191.142-10.6.191.143"] }));
    const node = c.node("node1");
    const plain = network(c, node, "member-plain", P_3B.plain, "net1", false);
    const sticky = network(c, node, "member-sticky", P_3B.sticky, "net2", true);
    const setUid = statefulSet(ns, "db", 1);

    const u1 = setPod(ns, "db", setUid, 0, "node1");
    const sandbox = cid();
    const x = addr(must(c, node, "ADD", sticky, ns, "db-0", u1, sandbox));
    const p = addr(must(c, node, "ADD", plain, ns, "db-0", u1, sandbox));

    // The pod object goes first (force-deleted, or its node lost); the DELs come after.
    await podGone(ns, "db-0");
    must(c, node, "DEL", sticky, ns, "db-0", u1, sandbox);
    const kept = claimOf(x);
    assert.ok(kept, `the sticky DEL after the pod is gone kept the member's address ${x}\n${c.logTail(node)}`);
    assert.is(kept!.spec.statefulSet, "db");
    const ep = endpointSpec(ns, "db-0")!;
    assert.equal(
      [ep.ownerControllerType, ep.ownerControllerName],
      ["StatefulSet", "db"],
      "the plain network's ADD left the endpoint's owner the pod's membership",
    );
    must(c, node, "DEL", plain, ns, "db-0", u1, sandbox);
    assert.is(claimOf(p), undefined, "the plain DEL freed its own address");
    assert.equal(entries(ns, "db-0"), [`net2 ${x}`], "and dropped only its own entry");
    assert.is(claimOf(x)?.spec.podUID, u1, "the sticky binding is untouched by the plain DEL");

    const u2 = setPod(ns, "db", setUid, 0, "node1");
    const back = must(c, node, "ADD", sticky, ns, "db-0", u2, cid());
    assert.is(addr(back), x, "the next incarnation gets the sticky address back");
  }),
);

const NS_3L = "berth-member-3l";
const P_3L = "member-3l";

S("3b, endpoint lost too: the DEL after the pod object is gone reads the set from the claim and keeps the binding; the next incarnation gets it back", () =>
  withCluster({ tag: "mem3l", namespaces: [NS_3L], pools: [P_3L], chain: false }, async (c) => {
    const ns = NS_3L;
    apply(poolManifest(P_3L, { subnet: SUBNET, ips: ["10.6.191.180-10.6.191.181"] }));
    const node = c.node("node1");
    const sticky = network(c, node, "member-lost", P_3L, "net1", true);
    const setUid = statefulSet(ns, "db", 1);
    const u1 = setPod(ns, "db", setUid, 0, "node1");
    const sandbox = cid();
    const x = addr(must(c, node, "ADD", sticky, ns, "db-0", u1, sandbox));

    // The endpoint is lost (kubectl delete bep, its CRD re-created) and no controller writes it back; the pod
    // object goes (force-deleted); its DEL comes after. Neither the pod nor the endpoint says it was a member.
    assert.ok(api.delete(path("berthendpoints", { ns, name: "db-0" })));
    await podGone(ns, "db-0");
    must(c, node, "DEL", sticky, ns, "db-0", u1, sandbox);
    assert.is(claimOf(x)?.spec.statefulSet, "db", `the DEL kept the member's address ${x}, its claim naming the set\n${c.logTail(node)}`);
    assert.match(c.logTail(node), "addresses stay bound");

    const u2 = setPod(ns, "db", setUid, 0, "node1");
    assert.is(addr(must(c, node, "ADD", sticky, ns, "db-0", u2, cid())), x, "the next incarnation gets it back");
  }),
);

// ---------------------------------------------------------------- window 3c

const NS_3C = "berth-member-3c";
const P_3C = "member-3c";

S(
  "3c: a pod orphaned (set deleted with Orphan), its sandbox restarted, then adopted by the re-created set: the binding survives the pod's deletion and the controller",
  () =>
    withControllers({ tag: "mem3c", namespaces: [NS_3C], pools: [P_3C] }, async (c) => {
      const ns = NS_3C;
      apply(poolManifest(P_3C, { subnet: SUBNET, ips: ["10.6.191.150-10.6.191.151"] }));
      const node = c.node("node1");
      const net = network(c, node, "member-sticky", P_3C, "eth0", true);
      const oldSet = statefulSet(ns, "og", 1);
      const u1 = setPod(ns, "og", oldSet, 0, "node1");
      const sandbox1 = cid();
      const x = addr(must(c, node, "ADD", net, ns, "og-0", u1, sandbox1));
      assert.is(claimOf(x)?.spec.statefulSet, "og");

      // `kubectl delete sts og --cascade=orphan`: the garbage collector takes the owner reference off the pod.
      assert.ok(api.delete(path("statefulsets", { ns, name: "og" }), { propagationPolicy: "Orphan" }));
      await waitFor("StatefulSet og to be gone", () => !api.get(path("statefulsets", { ns, name: "og" })), 20_000, 100);
      await waitFor("og-0 to be orphaned by the garbage collector", () => (podOf(ns, "og-0")?.metadata.ownerReferences ?? []).length === 0, 20_000, 100);

      // The orphan's sandbox restarts: the old sandbox's DEL, then an ADD with a new container ID, same UID.
      must(c, node, "DEL", net, ns, "og-0", u1, sandbox1);
      const restarted = must(c, node, "ADD", net, ns, "og-0", u1, cid());
      assert.is(addr(restarted), x, "the orphan's new sandbox keeps its address");

      // The set is re-created (a new UID), and its controller adopts the orphan.
      const newSet = statefulSet(ns, "og", 1);
      assert.is.not(newSet, oldSet);
      await waitFor(
        `og-0 to be adopted by the re-created set (UID ${newSet})`,
        () => podOf(ns, "og-0")?.metadata.ownerReferences?.some((o) => (o as { uid?: string }).uid === newSet && o.controller),
        20_000,
        100,
      );

      // The pod is deleted without a DEL (its node lost, say); the controller judges the claim while it is gone.
      await podGone(ns, "og-0");
      const ctl = await startController({ identity: "member-3c", resyncSeconds: 2 });
      await ctl.waitLeader();
      await ctl.waitScans(2);
      const kept = claimOf(x);
      assert.ok(kept, `the controller kept the re-adopted member's address ${x}\n${ctl.logTail()}`);
      assert.equal(
        ctl.releases((r) => r.address === x),
        [],
      );
      assert.is(kept!.spec.statefulSet, "og", "the orphan's ADD kept the membership on the claim");
      const ep = endpointSpec(ns, "og-0")!;
      assert.equal([ep.ownerControllerType, ep.ownerControllerName], ["StatefulSet", "og"], "and on the endpoint");

      const u2 = setPod(ns, "og", newSet, 0, "node1");
      const back = must(c, node, "ADD", net, ns, "og-0", u2, cid());
      assert.is(addr(back), x, "the re-created set's pod gets the old address");
      assert.is(claimOf(x)?.spec.podUID, u2);
    }),
);

// ---------------------------------------------------------------- window 8

const NS_8 = "berth-member-8";
const P_8 = "member-8";

S("8: a bare pod with a forged controller reference (the set's name, another UID) named like a member whose binding is kept gets an address of its own", () =>
  withCluster({ tag: "mem8", namespaces: [NS_8], pools: [P_8], chain: false }, async (c) => {
    const ns = NS_8;
    apply(poolManifest(P_8, { subnet: SUBNET, ips: ["10.6.191.160-10.6.191.162"] }));
    const node = c.node("node1");
    const net = network(c, node, "member-sticky", P_8, "eth0", true);
    const setUid = statefulSet(ns, "fg", 1);
    const u1 = setPod(ns, "fg", setUid, 0, "node1");
    const sandbox1 = cid();
    const x = addr(must(c, node, "ADD", net, ns, "fg-0", u1, sandbox1));
    const before = claimOf(x)!;
    // The member's pod is gone; the set keeps ordinal 0 (in range), its pod not yet recreated.
    await podGone(ns, "fg-0");

    const forged = randomUUID();
    const forger = setPod(ns, "fg", forged, 0, "node1");
    const taken = must(c, node, "ADD", net, ns, "fg-0", forger, cid());
    const y = addr(taken);
    assert.is.not(y, x, `the forger must not get the member's address ${x}`);
    const member = claimOf(x);
    assert.ok(member, "the member's claim is still there");
    assert.equal(member!.spec, before.spec, "untouched");
    assert.is(claimOf(y)?.spec.podUID, forger);
    assert.is(claimOf(y)?.spec.statefulSet, undefined, "the forger's claim names no set");
    const ep = endpointSpec(ns, "fg-0")!;
    assert.equal(
      [ep.ownerControllerType, ep.ownerControllerName, ep.podUID, entries(ns, "fg-0")],
      ["StatefulSet", "fg", u1, [`eth0 ${x}`]],
      "the endpoint stays the member's: the forger's address is not written over its entry",
    );
  }),
);

const NS_8B = "berth-member-8b";
const P_8B = "member-8b";

S("8: while a forger holds the member's name the controller keeps the member's binding, and the member's next pod gets it back", () =>
  withControllers({ tag: "mem8b", namespaces: [NS_8B], pools: [P_8B] }, async (c) => {
    const ns = NS_8B;
    apply(poolManifest(P_8B, { subnet: SUBNET, ips: ["10.6.191.165-10.6.191.167"] }));
    const node = c.node("node1");
    // A 2 s ADD budget: the controller may judge an unbound claim 9 s after its last write (claimDeadlineSeconds).
    const net = network(c, node, "member-sticky", P_8B, "eth0", true, { timeoutSeconds: 2 });
    const setUid = statefulSet(ns, "fg", 1);
    const u1 = setPod(ns, "fg", setUid, 0, "node1");
    const x = addr(must(c, node, "ADD", net, ns, "fg-0", u1, cid()));
    const written = Date.now();
    await podGone(ns, "fg-0");

    const forger = setPod(ns, "fg", randomUUID(), 0, "node1");
    const forgerSandbox = cid();
    const y = addr(must(c, node, "ADD", net, ns, "fg-0", forger, forgerSandbox));
    assert.is.not(y, x, `the forger must not get the member's address ${x}`);
    const ctl = await startController({ identity: "member-8b", resyncSeconds: 2, addTimeoutSeconds: 2 });
    await ctl.waitLeader();
    // Past the member's claim's ADD window: from now on, an unbound claim would be judged.
    await sleep(Math.max(0, written + 11_000 - Date.now()));
    await ctl.waitScans(2);
    assert.is(claimOf(x)?.spec.podUID, u1, `the controller kept the member's claim while the forger runs\n${ctl.logTail()}`);

    // The forger goes (the garbage collector deletes a pod whose owner is not there); its sandbox's DEL runs.
    await podGone(ns, "fg-0");
    must(c, node, "DEL", net, ns, "fg-0", forger, forgerSandbox);
    assert.is(claimOf(y), undefined, "the forger's DEL freed its own address");
    assert.is(claimOf(x)?.spec.podUID, u1, "and left the member's");
    await ctl.waitScans(2);
    assert.is(claimOf(x)?.spec.podUID, u1, `the controller kept the member's claim once the forger is gone\n${ctl.logTail()}`);

    const u2 = setPod(ns, "fg", setUid, 0, "node1");
    const back = must(c, node, "ADD", net, ns, "fg-0", u2, cid());
    assert.is(addr(back), x, "the member's next pod gets its address back");
  }),
);

// ---------------------------------------------------------------- window 7: no insisting on someone else's address

const NS_7 = "berth-member-7";
const P_7 = "member-7";

S("a member whose bound address another pod now holds (its claim was released meanwhile) takes another address instead of failing with 102", () =>
  withCluster({ tag: "mem7", namespaces: [NS_7], pools: [P_7], chain: false }, async (c) => {
    const ns = NS_7;
    apply(poolManifest(P_7, { subnet: SUBNET, ips: ["10.6.191.170"] }));
    const node1 = c.node("node1");
    const node2 = c.node("node2");
    const net1 = network(c, node1, "member-sticky", P_7, "eth0", true);
    const net2 = network(c, node2, "member-sticky", P_7, "eth0", true);
    const setUid = statefulSet(ns, "db", 1);
    const u1 = setPod(ns, "db", setUid, 0, "node1");
    const x = addr(must(c, node1, "ADD", net1, ns, "db-0", u1, cid()));
    assert.is(x, "10.6.191.170");
    await podGone(ns, "db-0");

    // The claim is released (as a controller whose endpoint write then failed would), and another pod takes the address.
    assert.ok(api.delete(path("berthipclaims", { name: "v4-10-6-191-170" })));
    const other = api.create(path("pods", { ns }), {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "other", namespace: ns },
      spec: { nodeName: "node2", containers: [{ name: "app", image: "nginx" }] },
    });
    assert.is(addr(must(c, node2, "ADD", net2, ns, "other", other.metadata.uid, cid())), x, "another pod took the address");
    assert.equal(entries(ns, "db-0"), [`eth0 ${x}`], "the member's endpoint still names it");
    patchPool(P_7, { spec: { ips: ["10.6.191.170-10.6.191.171"] } });

    const u2 = setPod(ns, "db", setUid, 0, "node1");
    const back = call(c, node1, "ADD", net1, ns, "db-0", u2, cid());
    assert.is(back.status, 0, `the member's ADD succeeds: ${back.stdout}\n${c.logTail(node1)}`);
    assert.is(addr(back), "10.6.191.171", "with another address");
    assert.is(claimOf(x)?.spec.podName, "other", "the other pod keeps its address");
    assert.is(claimOf("10.6.191.171")?.spec.statefulSet, "db");
    assert.equal(entries(ns, "db-0"), ["eth0 10.6.191.171"]);
  }),
);

S.run();
