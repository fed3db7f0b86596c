/**
 * A StatefulSet pod moving between nodes, in cluster mode, through the bridge
 * plugin in network namespaces (see cluster-env.ts):
 *
 * - deleted on node1 and recreated on node2, it keeps its address; the old
 *   sandbox's DEL on node1, arriving late (after the ADD on node2), does not
 *   release it;
 * - after its pool annotation is changed to another pool (kubectl patch sts)
 *   and the pod is recreated, it gets an address of the new pool, and the
 *   old one is released.
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster reschedule.test.ts
 */
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { cli } from "../support/berth.ts";
import {
  apply,
  claimNameOf,
  claimOf,
  claimsOfPool,
  deletePod,
  deletePods,
  endpointOf,
  patchStatefulSet,
  podOf,
  poolManifest,
  type Running,
  startDeletion,
  startPod,
  stopPod,
  waitFor,
  waitForPod,
  withCluster,
} from "../support/cluster/cluster-env.ts";

const NS_MOVE = "berth-resched-move";
const NS_POOL = "berth-resched-pool";
const NS_SAME = "berth-resched-same";
const NS_PLAIN = "berth-resched-plain";
const NS_OFF = "berth-resched-off";
const POOL_A = "resched-a";
const POOL_B = "resched-b";
const STS = "resched";
const POD = `${STS}-0`;
const ANNOTATION = "ipam.spidernet.io/ippool";

const S = suite("cluster: rescheduling and pool change");

function statefulSet(ns: string, pool: string): string {
  return JSON.stringify({
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: STS, namespace: ns },
    spec: {
      serviceName: STS,
      replicas: 1,
      selector: { matchLabels: { app: STS } },
      template: {
        metadata: { labels: { app: STS }, annotations: { [ANNOTATION]: JSON.stringify({ ipv4: [pool] }) } },
        spec: { containers: [{ name: "app", image: "nginx", imagePullPolicy: "IfNotPresent" }] },
      },
    },
  });
}

function inRange(address: string | undefined, third: number, from: number, to: number): boolean {
  const m = /^10\.6\.(\d+)\.(\d+)$/.exec(address ?? "");
  return !!m && Number(m[1]) === third && Number(m[2]) >= from && Number(m[2]) <= to;
}

const inA = (a?: string) => inRange(a, 170, 1, 10);
const inB = (a?: string) => inRange(a, 170, 101, 110);

/** The claim of `p`'s address is held by exactly this incarnation, sandbox and node. */
function assertHeld(ns: string, p: Running, pool: string, what: string): void {
  const claim = claimOf(p.v4!);
  assert.ok(claim, `${what}: claim ${claimNameOf(p.v4!)} exists`);
  assert.equal(
    { pool: claim!.spec.pool, pod: claim!.spec.podName, uid: claim!.spec.podUID, container: claim!.spec.containerID, node: claim!.spec.node },
    { pool, pod: p.name, uid: p.uid, container: p.attachment.containerId, node: p.node.name },
    `${what}: claim holder`,
  );
  const ep = endpointOf(ns, p.name);
  assert.ok(ep, `${what}: endpoint exists`);
  assert.equal(
    { uid: ep!.spec.podUID, node: ep!.spec.node, container: ep!.spec.containerID, ips: ep!.spec.ips },
    {
      uid: p.uid,
      node: p.node.name,
      container: p.attachment.containerId,
      // The entry names the network that wrote it and the pod incarnation it was taken for.
      ips: [{ interface: "eth0", network: "berth-cluster-resch", podUID: p.uid, ipv4: `${p.v4}/16`, ipv4Pool: pool }],
    },
    `${what}: endpoint`,
  );
}

S("rescheduled to another node: same address there; the old node's late DEL does not release it", () =>
  withCluster({ tag: "resch", namespaces: [NS_MOVE], pools: [POOL_A, POOL_B] }, async (c) => {
    const NS = NS_MOVE;
    const node1 = c.node("node1");
    const node2 = c.node("node2");
    apply(poolManifest(POOL_A, { subnet: "10.6.0.0/16", ips: ["10.6.170.1-10.6.170.10"] }));
    apply(statefulSet(NS, POOL_A));

    const first = await startPod(c, NS, POD, node1);
    assert.ok(inA(first.v4), `${first.v4} is in ${POOL_A}`);
    assertHeld(NS, first, POOL_A, "on node1");

    // node1 goes away: the pod is deleted without node1's kubelet running DEL (its sandbox lingers).
    startDeletion(NS, POD);
    deletePods(NS, [POD], { force: true });
    const second = await startPod(c, NS, POD, node2, first.uid);
    assert.is.not(second.uid, first.uid, "a new incarnation");
    assert.is(second.v4, first.v4, "same address on node2");
    // startPod asserted eth0 in node2's netns; check it is the address, with node2's nodeName in claim and endpoint.
    assert.equal(
      second.attachment.result.ips.map((ip: { address: string }) => ip.address),
      [`${first.v4}/16`],
    );
    assertHeld(NS, second, POOL_A, "on node2");
    assert.is(claimsOfPool(POOL_A).length, 1);

    // node1 comes back and its kubelet runs the old sandbox's DEL, late.
    c.detach(first.attachment);
    assertHeld(NS, second, POOL_A, "after node1's late DEL");
    assert.is(claimsOfPool(POOL_A).length, 1, "still one claim after the late DEL");
    assert.equal(
      claimsOfPool(POOL_A).map((cl) => cl.spec.address),
      [first.v4],
    );
    // DEL is idempotent: a second late DEL changes nothing.
    const again = c.berth("DEL", node1, { containerId: first.attachment.containerId, args: first.attachment.args });
    assert.is(again.status, 0, `repeated DEL: ${again.stdout}${again.stderr}`);
    assertHeld(NS, second, POOL_A, "after a repeated late DEL");
  }),
);

S("pool annotation changed on the StatefulSet: the recreated pod gets an address of the new pool, the old one is released", () =>
  withCluster({ tag: "resch", namespaces: [NS_POOL], pools: [POOL_A, POOL_B] }, async (c) => {
    const NS = NS_POOL;
    const node1 = c.node("node1");
    const node2 = c.node("node2");
    apply(poolManifest(POOL_A, { subnet: "10.6.0.0/16", ips: ["10.6.170.1-10.6.170.10"] }));
    apply(poolManifest(POOL_B, { subnet: "10.6.0.0/16", ips: ["10.6.170.101-10.6.170.110"] }));
    apply(statefulSet(NS, POOL_A));

    const first = await startPod(c, NS, POD, node2);
    assert.ok(inA(first.v4), `${first.v4} is in ${POOL_A}`);
    assertHeld(NS, first, POOL_A, "before the change");
    assert.is(claimsOfPool(POOL_A).length, 1, "one claim before the change");

    // The template now names POOL_B. (RollingUpdate may itself start deleting the pod: either way it ends terminating.)
    const patch = { spec: { template: { metadata: { annotations: { [ANNOTATION]: JSON.stringify({ ipv4: [POOL_B] }) } } } } };
    patchStatefulSet(NS, STS, patch);
    stopPod(c, NS, first, () => {
      // The member is still in range, so its DEL keeps the old address bound.
      assert.ok(claimOf(first.v4!), "DEL of a member in range keeps the old claim");
    });

    // The recreated pod carries the new annotation.
    const recreated = await waitFor(
      "the recreated pod with the new annotation",
      () => {
        const p = podOf(NS, POD);
        return p && p.metadata.uid !== first.uid && !p.metadata.deletionTimestamp && p.metadata.annotations?.[ANNOTATION]?.includes(POOL_B) ? p : undefined;
      },
      20_000,
    );
    assert.ok(recreated);
    const second = await startPod(c, NS, POD, node1, first.uid);
    assert.ok(inB(second.v4), `recreated pod got ${second.v4}, expected an address of ${POOL_B} (10.6.170.101-110)`);
    assertHeld(NS, second, POOL_B, "after the change");
    assert.is(claimOf(first.v4!), undefined, `the old address's claim ${claimNameOf(first.v4!)} is gone`);
    assert.equal(claimsOfPool(POOL_A), [], `no claims left in ${POOL_A}`);
    assert.equal(
      claimsOfPool(POOL_B).map((cl) => cl.spec.address),
      [second.v4],
      `one claim in ${POOL_B}`,
    );
    assert.is(claimsOfPool(POOL_A).length, 0, `${POOL_A} holds no claim`);
    assert.is(claimsOfPool(POOL_B).length, 1, `${POOL_B} holds one claim`);

    // And it sticks: recreated once more (no annotation change), the same POOL_B address.
    stopPod(c, NS, second);
    const third = await startPod(c, NS, POD, node2, second.uid);
    assert.is(third.v4, second.v4, "the new address is kept across the next recreation");
    assertHeld(NS, third, POOL_B, "recreated again");
    await waitForPod(NS, POD);
  }),
);

S("recreated on the same node before the old sandbox's DEL: same address; the late DEL releases nothing", () =>
  withCluster({ tag: "resch", namespaces: [NS_SAME], pools: [POOL_A, POOL_B] }, async (c) => {
    const NS = NS_SAME;
    const node1 = c.node("node1");
    apply(poolManifest(POOL_A, { subnet: "10.6.0.0/16", ips: ["10.6.170.1-10.6.170.10"] }));
    apply(statefulSet(NS, POOL_A));

    const first = await startPod(c, NS, POD, node1);
    assertHeld(NS, first, POOL_A, "first incarnation");
    // Deleted while node1's kubelet is busy: no DEL yet, the old sandbox and its lease linger on node1.
    startDeletion(NS, POD);
    deletePods(NS, [POD], { force: true });
    const second = await startPod(c, NS, POD, node1, first.uid);
    assert.is(second.v4, first.v4, "same address for the new incarnation on the same node");
    assertHeld(NS, second, POOL_A, "second incarnation");
    const leases = () => {
      const r = cli(["inspect", "leases", "--db", join(node1.dataDir, "berth.db"), "-o", "json"]);
      assert.is(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout) as { container_id: string; address: string; state: string }[]).map((l) => `${l.container_id}=${l.address}:${l.state}`);
    };
    assert.equal(leases(), [`${second.attachment.containerId}=${second.v4}:active`], "node1's database: only the new sandbox's lease");

    c.detach(first.attachment);
    assertHeld(NS, second, POOL_A, "after the old sandbox's late DEL");
    assert.equal(leases(), [`${second.attachment.containerId}=${second.v4}:active`], "the late DEL left the new sandbox's lease alone");
    assert.is(claimsOfPool(POOL_A).length, 1);
  }),
);

S("plain pod (no StatefulSet): a sandbox restart keeps its address; DEL once the pod is terminating releases it", () =>
  withCluster({ tag: "resch", namespaces: [NS_PLAIN], pools: [POOL_A, POOL_B] }, async (c) => {
    const NS = NS_PLAIN;
    const node2 = c.node("node2");
    apply(poolManifest(POOL_A, { subnet: "10.6.0.0/16", ips: ["10.6.170.1-10.6.170.10"] }));
    const name = "plain-web";
    apply(
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: NS, annotations: { [ANNOTATION]: JSON.stringify({ ipv4: [POOL_A] }) } },
        spec: { containers: [{ name: "app", image: "nginx" }] },
      }),
    );
    const first = await startPod(c, NS, name, node2);
    assert.ok(inA(first.v4));
    assertHeld(NS, first, POOL_A, "first sandbox");
    const ep = endpointOf(NS, name);
    assert.equal([ep?.spec.ownerControllerType, ep?.spec.ownerControllerName], ["None", undefined], "not a StatefulSet member");

    // The sandbox dies and the kubelet runs DEL while the pod (same UID) still runs: the address stays.
    c.detach(first.attachment);
    assert.ok(claimOf(first.v4!), "claim kept across the sandbox restart");
    assert.ok(endpointOf(NS, name), "endpoint kept across the sandbox restart");
    assert.is(claimsOfPool(POOL_A).length, 1);
    const attachment = c.attach(node2, NS, name, first.uid);
    const second = { ...first, attachment, v4: attachment.result.ips[0].address.split("/")[0] };
    assert.is(second.v4, first.v4, "the new sandbox gets the same address");
    assertHeld(NS, second, POOL_A, "second sandbox");

    // The pod is deleted (kubelet order): released.
    startDeletion(NS, name);
    c.detach(attachment);
    assert.is(claimOf(first.v4!), undefined, "claim released when the pod is terminating");
    assert.is(endpointOf(NS, name), undefined, "endpoint gone");
    assert.is(claimsOfPool(POOL_A).length, 0);
    deletePod(NS, name);
  }),
);

S("enableStatefulSet: false: a member is treated like any pod: no binding kept, DEL of the terminating pod releases its address", () =>
  withCluster({ tag: "resch", namespaces: [NS_OFF], pools: [POOL_A, POOL_B] }, async (c) => {
    const NS = NS_OFF;
    const node1 = c.node("node1");
    const off = { enableStatefulSet: false };
    apply(poolManifest(POOL_A, { subnet: "10.6.0.0/16", ips: ["10.6.170.1-10.6.170.10"] }));
    apply(statefulSet(NS, POOL_A));

    const first = await startPod(c, NS, POD, node1, undefined, off);
    assert.ok(inA(first.v4));
    const claim = claimOf(first.v4!);
    assert.is(claim?.spec.statefulSet, undefined, "the claim records no StatefulSet");
    // Membership is the pod's, whatever the network: another network of the pod may keep its address (0.5).
    assert.is(endpointOf(NS, POD)?.spec.ownerControllerType, "StatefulSet", "the endpoint records the pod's membership");

    stopPod(c, NS, first, () => {
      assert.is(claimOf(first.v4!), undefined, "DEL of the terminating member released its address");
      assert.is(endpointOf(NS, POD), undefined, "and its endpoint");
    });
    assert.is(claimsOfPool(POOL_A).length, 0);
    const second = await startPod(c, NS, POD, node1, first.uid, off);
    assert.ok(inA(second.v4), `the recreated member gets an address of the pool (${second.v4})`);
    assertHeld(NS, second, POOL_A, "recreated member");
  }),
);

S.run();
