/**
 * `berth controller` end to end on the test control plane, as a real process
 * with its least-privilege ServiceAccount (see controller-env.ts), against
 * claims made by dist/berth on simulated nodes (run directly: no interface
 * is needed) and the real StatefulSet controller:
 *
 * - crash: an ADD SIGKILLed right after it created its claim; without the
 *   controller the next ADD of that attachment undoes the leftover; with the
 *   controller such a claim is freed one scan after its recorded ADD deadline
 *   (half-finished-add);
 * - a node disappears: its plain pods' claims are freed (pod-deleted), a
 *   StatefulSet member's stays while in range and goes on scale-down
 *   (scaled-down, with an AddressReleased Event), no DEL ever runs;
 * - ipam.berth.dev/reclaim: Retain keeps a scaled-down ordinal's address for
 *   its return; deleting the StatefulSet releases everything (and the pool
 *   deleted meanwhile goes once empty); ordinal-ordered addresses;
 * - two replicas: one leader, only it releases; SIGKILL it and the other
 *   takes over and finishes the work; SIGTERM hands the lease over at once.
 *
 * Address ranges: 10.6.175.1-70 (see cluster-env.ts).
 *
 * Run: npm run build && eval "$(bash scripts/testenv.sh up)" &&
 *      node --import tsx node_modules/uvu/bin.js test/cluster controller.test.ts
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  admin,
  apply,
  bindPod,
  type ClusterScope,
  claimNameOf,
  claimOf,
  claimsOfNamespace,
  deletePods,
  deletePool,
  deleteStatefulSet,
  endpointOf,
  getPool,
  markPodReady,
  path,
  podArgs,
  podOf,
  poolManifest,
  poolStatus,
  type SimNode,
  scaleStatefulSet,
  statefulSetManifest,
  waitFor,
  waitForAllocated,
  waitForPod,
  waitForTerminating,
} from "../support/cluster/cluster-env.ts";
import {
  add,
  events,
  type Held,
  ippool,
  lease,
  leasesOn,
  POOL_FINALIZER,
  plainPod,
  poolFinalizers,
  sleep,
  startController,
  waitForAsync,
  waitReleased,
  withControllers,
} from "../support/cluster/controller-env.ts";
import { logged } from "../support/log-lines.ts";

const S = suite("cluster: berth controller");

function statefulSet(
  ns: string,
  name: string,
  replicas: number,
  pool: string,
  o: { annotations?: Record<string, string>; templateAnnotations?: Record<string, string> } = {},
): string {
  return JSON.stringify(
    statefulSetManifest(ns, name, replicas, { annotations: o.annotations, templateAnnotations: { ...ippool(pool), ...o.templateAnnotations } }),
  );
}

/** The kubelet's DEL; asserts success. */
function del(c: ClusterScope, h: Held): void {
  const o = c.berth("DEL", h.node, { containerId: h.containerId, args: podArgs(h.ns, h.name, h.uid) });
  assert.is(o.status, 0, `DEL of ${h.ns}/${h.name} on ${h.node.name}: ${o.stdout} ${o.stderr}\n${c.logTail(h.node)}`);
}

/** Scheduler and kubelet for a StatefulSet member: wait for it (a new incarnation if notUid), bind, ADD, Running/Ready. */
async function member(c: ClusterScope, ns: string, name: string, node: SimNode, notUid?: string): Promise<Held> {
  const pod = await waitForPod(ns, name, notUid);
  bindPod(ns, name, node.name);
  const h = add(c, node, ns, name, pod.metadata.uid);
  markPodReady(ns, name, h.address);
  return h;
}

/** Removes pods at once with no DEL: their node is gone. */
function forceDelete(ns: string, ...names: string[]): void {
  deletePods(ns, names, { force: true });
}

function claimsOf(ns: string, pool: string) {
  return claimsOfNamespace(ns).filter((cl) => cl.spec.pool === pool);
}

/** Endpoint addresses (no prefix) of pod ns/name. */
function endpointAddresses(ns: string, name: string): string[] {
  return (endpointOf(ns, name)?.spec.ips ?? [])
    .flatMap((i) => [i.ipv4, i.ipv6])
    .filter((x): x is string => !!x)
    .map((x) => x.split("/")[0]);
}

// ---------------------------------------------------------------- 1. crash

const NS_CRASH = "berth-ctl-crash";
const P_CRASH = "ctl-crash";

S(
  "crash: an ADD SIGKILLed after creating its claim leaves claim + pending lease; the next ADD of that attachment undoes it; with the controller the claim is freed one scan after its recorded ADD deadline, by server time (half-finished-add)",
  () =>
    withControllers({ tag: "ctlcrash", namespaces: [NS_CRASH], pools: [P_CRASH] }, async (c) => {
      apply(poolManifest(P_CRASH, { subnet: "10.6.0.0/16", ips: ["10.6.175.1-10.6.175.10"] }));
      const node1 = c.node("node1");

      /** ADD with BERTH_FAULT=kill-after-claim: must die by SIGKILL, having printed nothing. */
      const addKilled = (ns: string, name: string, uid: string, containerId: string) => {
        c.killedAdd(node1, { ns, name, uid }, containerId, "kill-after-claim");
        const claims = claimsOf(ns, P_CRASH).filter((cl) => cl.spec.podName === name);
        assert.is(claims.length, 1, `the killed ADD of ${name} left exactly one claim`);
        assert.equal(
          { uid: claims[0].spec.podUID, container: claims[0].spec.containerID, node: claims[0].spec.node },
          { uid, container: containerId, node: "node1" },
        );
        assert.is(endpointOf(ns, name), undefined, `the killed ADD of ${name} wrote no endpoint`);
        const local = leasesOn(node1).filter((l) => l.container_id === containerId);
        assert.equal(
          local.map((l) => `${l.address}:${l.state}`),
          [`${claims[0].spec.address}:pending`],
          `node1 keeps a pending lease for the killed ADD of ${name}`,
        );
        return claims[0];
      };

      // Without the controller: the same pod and container ADDed again on the node recovers.
      const uidA = plainPod(NS_CRASH, "crash-a", "node1", P_CRASH);
      const cidA = randomBytes(32).toString("hex");
      const leftA = addKilled(NS_CRASH, "crash-a", uidA, cidA);
      const a = add(c, node1, NS_CRASH, "crash-a", uidA, cidA);
      const claimsA = claimsOf(NS_CRASH, P_CRASH);
      assert.equal(
        claimsA.map((cl) => `${cl.spec.podName}=${cl.spec.address}/${cl.spec.containerID}`),
        [`crash-a=${a.address}/${cidA}`],
        "exactly one claim afterwards, the new ADD's",
      );
      assert.equal(endpointAddresses(NS_CRASH, "crash-a"), [a.address], "crash-a's endpoint lists its address");
      assert.equal(
        leasesOn(node1)
          .filter((l) => l.container_id === cidA)
          .map((l) => `${l.address}:${l.state}`),
        [`${a.address}:active`],
        "one active lease on node1, the pending one gone",
      );
      assert.is(
        logged(readFileSync(node1.logFile, "utf8"), "undid an interrupted ADD", { address: leftA.spec.address, claimDeleted: true }).length,
        1,
        "node1's log: the interrupted ADD undone",
      );
      // No count to check here: without a controller nobody writes the pool's status (the claims above are the truth).

      // With the controller: a killed ADD's claim whose pod is gone is freed once its ADD's deadline has passed,
      // counted from the controller's first sight of it. (While its pod exists, it is the pod's: see
      // hold-safety.test.ts.) The test cuts the deadline the claim records to 5 s.
      const uidB = plainPod(NS_CRASH, "crash-b", "node1", P_CRASH);
      const cidB = randomBytes(32).toString("hex");
      const leftB = addKilled(NS_CRASH, "crash-b", uidB, cidB);
      deletePods(NS_CRASH, ["crash-b"], { force: true });
      const DEADLINE = 5;
      const RESYNC = 3;
      admin.sync.patch(path("berthipclaims", { name: leftB.metadata.name }), { spec: { addDeadlineSeconds: DEADLINE } });
      const startedAt = Date.now();
      const ctl = await startController({ identity: "ctl-crash", resyncSeconds: RESYNC, addTimeoutSeconds: 2 });
      await ctl.waitLeader();
      // Leading may wait out the lease of an earlier test's controller (up to its duration): the bound counts from here.
      const leaderAt = Date.now();
      await ctl.waitScans(1);
      if (Date.now() - startedAt < DEADLINE * 1000 - 500) {
        assert.ok(claimOf(leftB.spec.address), "a claim whose ADD's deadline has not passed is left alone (its ADD may still be running)");
      }
      const goneAt = await waitReleased(leftB.spec.address, 20_000, ctl);
      const after = goneAt - startedAt;
      console.error(`[ctlcrash] half-finished claim released ${after} ms after the controller started (deadline ${DEADLINE} s, resync ${RESYNC} s)`);
      assert.ok(after >= DEADLINE * 1000, `not released before its deadline (${after} ms)`);
      assert.ok(
        goneAt - leaderAt <= (DEADLINE + 1 + RESYNC + 2 + 1.5) * 1000,
        `released within one scan after its deadline (took ${goneAt - leaderAt} ms after the controller led, ${after} ms after it started)`,
      );
      const rel = await ctl.waitReleases((r) => r.pod === `${NS_CRASH}/crash-b`, 1);
      assert.equal(
        rel.map((r) => `${r.address} ${r.pool} ${r.reason} ${r.claim}`),
        [`${leftB.spec.address} ${P_CRASH} half-finished-add ${claimNameOf(leftB.spec.address)}`],
        `the controller's log line:\n${ctl.logTail()}`,
      );
      assert.match(rel[0].line, /never bound/);
      assert.is(
        await ctl.metric('berth_releases_total{reason="half-finished-add"}'),
        ctl.releases((r) => r.reason === "half-finished-add").length,
        "the metric counts the logged releases",
      );
      // crash-a, bound and running, is untouched; the pool count follows.
      assert.equal(
        claimsOf(NS_CRASH, P_CRASH).map((cl) => `${cl.spec.podName}=${cl.spec.address}`),
        [`crash-a=${a.address}`],
        "only crash-a's claim is left",
      );
      await waitForAllocated(P_CRASH, 1, 10_000);
      assert.is(await ctl.metric(`berth_pool_allocated{pool="${P_CRASH}"}`), 1);
      assert.is(await ctl.metric(`berth_pool_size{pool="${P_CRASH}"}`), 10);
      // The kubelet's DEL after the failed ADD: succeeds, the pending lease goes.
      del(c, { ns: NS_CRASH, name: "crash-b", uid: uidB, node: node1, containerId: cidB, address: leftB.spec.address });
      assert.equal(
        leasesOn(node1).filter((l) => l.container_id === cidB),
        [],
        "no lease left for crash-b's killed ADD",
      );

      // The finalizer: a pool deleted while crash-a holds an address stays until that address is released.
      assert.ok(poolFinalizers(P_CRASH)?.includes(POOL_FINALIZER), `the controller put ${POOL_FINALIZER} on ${P_CRASH}`);
      deletePool(P_CRASH);
      await ctl.waitScans(1);
      const deleting = getPool(P_CRASH);
      assert.ok(deleting?.metadata.deletionTimestamp, `${P_CRASH} is still there (terminating) while crash-a holds ${a.address}`);
      assert.ok(claimOf(a.address), "crash-a's claim is not released by the pool's deletion");
      deletePods(NS_CRASH, ["crash-a"], { force: true });
      del(c, a);
      await waitFor(`${P_CRASH} to be gone once empty\n${ctl.logTail()}`, () => !getPool(P_CRASH), 10_000, 200);
      await ctl.waitLog(new RegExp(`"msg":"pool deleted: no address claimed any more".*"pool":"${P_CRASH}"`));
    }),
);

// ---------------------------------------------------------------- 2. a node disappears

const NS_GONE = "berth-ctl-gone";
const P_GONE = "ctl-gone";

S(
  "node gone: plain pods' claims freed (pod-deleted), the StatefulSet member's kept while in range, freed on scale-down (scaled-down, Event AddressReleased); no DEL ever runs",
  () =>
    withControllers({ tag: "ctlgone", namespaces: [NS_GONE], pools: [P_GONE] }, async (c) => {
      apply(poolManifest(P_GONE, { subnet: "10.6.0.0/16", ips: ["10.6.175.21-10.6.175.30"] }));
      const node1 = c.node("node1");
      const node3 = c.node("node3");
      apply(statefulSet(NS_GONE, "web", 2, P_GONE));
      const web0 = await member(c, NS_GONE, "web-0", node1);
      const web1 = await member(c, NS_GONE, "web-1", node3);
      const pa = add(c, node3, NS_GONE, "plain-a", plainPod(NS_GONE, "plain-a", "node3", P_GONE));
      const pb = add(c, node3, NS_GONE, "plain-b", plainPod(NS_GONE, "plain-b", "node3", P_GONE));
      const all = [web0, web1, pa, pb];
      assert.is(new Set(all.map((h) => h.address)).size, 4, "four distinct addresses");

      const ctl = await startController({ identity: "ctl-gone", resyncSeconds: 3 });
      await ctl.waitLeader();
      await ctl.waitScans(2);
      assert.equal(
        ctl.releases((r) => r.pod.startsWith(`${NS_GONE}/`)),
        [],
        "nothing released while every pod runs",
      );
      assert.is(claimsOf(NS_GONE, P_GONE).length, 4);
      await waitForAllocated(P_GONE, 4, 10_000);

      // node3 is gone: its pods are removed with no DEL.
      const t0 = Date.now();
      forceDelete(NS_GONE, "plain-a", "plain-b", "web-1");
      for (const h of [pa, pb]) await waitReleased(h.address, 10_000, ctl);
      console.error(`[ctlgone] plain pods' claims released ${Date.now() - t0} ms after deletion`);
      const plain = await ctl.waitReleases((r) => r.pod.startsWith(`${NS_GONE}/plain-`), 2);
      assert.equal(plain.map((r) => `${r.pod} ${r.address} ${r.reason}`).sort(), [
        `${NS_GONE}/plain-a ${pa.address} pod-deleted`,
        `${NS_GONE}/plain-b ${pb.address} pod-deleted`,
      ]);
      assert.is(endpointOf(NS_GONE, "plain-a"), undefined, "plain-a's endpoint is gone");
      assert.is(endpointOf(NS_GONE, "plain-b"), undefined, "plain-b's endpoint is gone");

      // web-1 is recreated by the StatefulSet controller (new UID, nowhere to run): its claim stays.
      const again = await waitForPod(NS_GONE, "web-1", web1.uid);
      await ctl.waitScans(2);
      assert.is(claimOf(web1.address)?.spec.podName, "web-1", `web-1's claim stays while ordinal 1 is in range\n${ctl.logTail()}`);
      assert.equal(endpointAddresses(NS_GONE, "web-1"), [web1.address], "web-1's endpoint stays");
      assert.is(claimOf(web0.address)?.spec.podUID, web0.uid, "web-0 untouched");
      await waitForAllocated(P_GONE, 2, 10_000);
      assert.ok(again.metadata.uid !== web1.uid);

      // Scaled down with web-1 never having run again: ordinal 1's address is released, no DEL.
      const t1 = Date.now();
      scaleStatefulSet(NS_GONE, "web", 1);
      await waitReleased(web1.address, 10_000, ctl);
      console.error(`[ctlgone] scaled-down ordinal released ${Date.now() - t1} ms after kubectl scale`);
      const down = await ctl.waitReleases((r) => r.pod === `${NS_GONE}/web-1`, 1);
      assert.equal(
        down.map((r) => `${r.address} ${r.reason}`),
        [`${web1.address} scaled-down`],
      );
      assert.is(endpointOf(NS_GONE, "web-1"), undefined, "web-1's endpoint is gone");
      const ev = await waitFor(
        "an AddressReleased Event for web-1's address",
        () => events(NS_GONE, "AddressReleased").find((e) => e.message.includes(web1.address)),
        5000,
        200,
      );
      assert.ok(
        (ev.involvedObject.kind === "StatefulSet" && ev.involvedObject.name === "web") ||
          (ev.involvedObject.kind === "Pod" && ev.involvedObject.name === "web-1"),
        `the Event is on the StatefulSet or the pod: ${JSON.stringify(ev.involvedObject)}`,
      );
      assert.is(ev.type, "Normal");
      assert.is(ev.source?.component, "berth-controller");
      assert.match(ev.message, /ordinal 1 is outside StatefulSet/);
      assert.equal(
        claimsOf(NS_GONE, P_GONE).map((cl) => `${cl.spec.podName}=${cl.spec.address}`),
        [`web-0=${web0.address}`],
        "only web-0 holds an address",
      );
      await waitForAllocated(P_GONE, 1, 10_000);
      assert.equal(poolStatus(P_GONE).totalIPCount, 10);
      for (const reason of ["pod-deleted", "scaled-down"]) {
        assert.is(
          await ctl.metric(`berth_releases_total{reason="${reason}"}`),
          ctl.releases((r) => r.reason === reason).length,
          `berth_releases_total{reason="${reason}"} counts the logged releases`,
        );
      }
    }),
);

// ---------------------------------------------------------------- 3. Retain, ordinal-ordered

const NS_KEEP = "berth-ctl-keep";
const P_KEEP = "ctl-keep";
const P_ORD = "ctl-ord";

S(
  "Retain: scaled 3 → 2 → 3, ordinal 2 gets its old address back; deleting the StatefulSet (no DEL) releases everything and lets the deleted pool go; ordinal-ips: pod N gets the Nth address",
  () =>
    withControllers({ tag: "ctlkeep", namespaces: [NS_KEEP], pools: [P_KEEP, P_ORD] }, async (c) => {
      apply(poolManifest(P_KEEP, { subnet: "10.6.0.0/16", ips: ["10.6.175.41-10.6.175.45"] }));
      apply(poolManifest(P_ORD, { subnet: "10.6.0.0/16", ips: ["10.6.175.51-10.6.175.55"] }));
      const nodes = ["node1", "node2", "node3"].map((n) => c.node(n));
      const ctl = await startController({ identity: "ctl-keep", resyncSeconds: 3 });
      await ctl.waitLeader();

      apply(statefulSet(NS_KEEP, "keep", 3, P_KEEP, { annotations: { "ipam.berth.dev/reclaim": "Retain" } }));
      const k: Held[] = [];
      for (let i = 0; i < 3; i++) k.push(await member(c, NS_KEEP, `keep-${i}`, nodes[i]));
      assert.is(new Set(k.map((h) => h.address)).size, 3);

      // 3 → 2: the StatefulSet controller deletes keep-2; the kubelet's DEL keeps the retained address.
      scaleStatefulSet(NS_KEEP, "keep", 2);
      await waitForTerminating(NS_KEEP, "keep-2");
      del(c, k[2]);
      deletePods(NS_KEEP, ["keep-2"], { force: true });
      await waitFor("keep-2 to be gone", () => !podOf(NS_KEEP, "keep-2"), 10_000);
      await ctl.waitScans(2);
      assert.is(claimOf(k[2].address)?.spec.podName, "keep-2", `keep-2's address stays claimed while scaled down (Retain)\n${ctl.logTail()}`);
      assert.equal(endpointAddresses(NS_KEEP, "keep-2"), [k[2].address], "keep-2's endpoint stays");
      assert.equal(
        ctl.releases((r) => r.pod.startsWith(`${NS_KEEP}/`)),
        [],
        "the controller released nothing",
      );
      await waitForAllocated(P_KEEP, 3, 10_000);

      // 2 → 3: keep-2 comes back (new UID, another node) with its old address.
      scaleStatefulSet(NS_KEEP, "keep", 3);
      const back = await member(c, NS_KEEP, "keep-2", nodes[0], k[2].uid);
      assert.is(back.address, k[2].address, "keep-2 got its old address back");
      assert.equal(
        { uid: claimOf(back.address)?.spec.podUID, node: claimOf(back.address)?.spec.node },
        { uid: back.uid, node: "node1" },
        "the claim follows the new incarnation",
      );

      // Ordinal-ordered: pod N gets the Nth address of ctl-ord, exactly.
      apply(statefulSet(NS_KEEP, "ord", 3, P_ORD, { templateAnnotations: { "ipam.berth.dev/ordinal-ips": "true" } }));
      const ord: Held[] = [];
      for (let i = 0; i < 3; i++) ord.push(await member(c, NS_KEEP, `ord-${i}`, nodes[(i + 1) % 3]));
      assert.equal(
        ord.map((h) => h.address),
        ["10.6.175.51", "10.6.175.52", "10.6.175.53"],
        "ord-N has the Nth address",
      );
      await waitForAllocated(P_ORD, 3, 10_000);

      // Scale keep down again (retained, with DEL), delete its pool while in use, then the StatefulSet with
      // its nodes gone (pods removed, no DEL): the controller releases all three and the pool goes.
      scaleStatefulSet(NS_KEEP, "keep", 2);
      await waitForTerminating(NS_KEEP, "keep-2");
      del(c, back);
      deletePods(NS_KEEP, ["keep-2"], { force: true });
      deletePool(P_KEEP);
      await ctl.waitScans(1);
      assert.ok(getPool(P_KEEP)?.metadata.deletionTimestamp, `${P_KEEP} waits (terminating) while its addresses are claimed`);
      assert.is(claimsOf(NS_KEEP, P_KEEP).length, 3, "a pool's deletion releases nothing by itself");
      const t0 = Date.now();
      deleteStatefulSet(NS_KEEP, "keep");
      forceDelete(NS_KEEP, "keep-0", "keep-1");
      for (const h of [k[0], k[1], back]) await waitReleased(h.address, 15_000, ctl);
      console.error(`[ctlkeep] StatefulSet deleted: 3 addresses released in ${Date.now() - t0} ms`);
      const rel = await ctl.waitReleases((r) => r.pod.startsWith(`${NS_KEEP}/keep-`), 3);
      assert.equal(
        rel.map((r) => `${r.pod} ${r.address} ${r.reason}`).sort(),
        [k[0], k[1], back].map((h) => `${NS_KEEP}/${h.name} ${h.address} statefulset-deleted`).sort(),
        "each released once, as statefulset-deleted",
      );
      for (const h of [k[0], k[1], back]) assert.is(endpointOf(NS_KEEP, h.name), undefined, `${h.name}'s endpoint is gone`);
      await waitFor(`${P_KEEP} to be gone once empty\n${ctl.logTail()}`, () => !getPool(P_KEEP), 10_000, 200);
      // ord is untouched.
      assert.equal(
        claimsOf(NS_KEEP, P_ORD)
          .map((cl) => cl.spec.address)
          .sort(),
        ["10.6.175.51", "10.6.175.52", "10.6.175.53"],
      );
    }),
);

// ---------------------------------------------------------------- 4. two controllers

const NS_LEAD = "berth-ctl-lead";
const P_LEAD = "ctl-lead";

S(
  "two replicas: exactly one leads and only it releases; SIGKILL the leader and the other takes over within 15 s and finishes the work; SIGTERM hands the lease over at once",
  () =>
    withControllers({ tag: "ctllead", namespaces: [NS_LEAD], pools: [P_LEAD] }, async (c) => {
      apply(poolManifest(P_LEAD, { subnet: "10.6.0.0/16", ips: ["10.6.175.61-10.6.175.70"] }));
      const node2 = c.node("node2");
      let n = 0;
      const pods = (count: number) =>
        Array.from({ length: count }, () => {
          const name = `lead-${++n}`;
          return add(c, node2, NS_LEAD, name, plainPod(NS_LEAD, name, "node2", P_LEAD));
        });

      const a = await startController({ identity: "ctl-a", resyncSeconds: 3 });
      const b = await startController({ identity: "ctl-b", resyncSeconds: 3 });
      await waitForAsync("one of the two to lead", async () => ((await a.leader()) ?? 0) + ((await b.leader()) ?? 0) === 1, 15_000, 100);
      const leaderOf = async () => [await a.leader(), await b.leader()];
      for (let i = 0; i < 4; i++) {
        const [la, lb] = await leaderOf();
        assert.ok((la === 1) !== (lb === 1) && la !== undefined && lb !== undefined, `exactly one reports berth_controller_leader 1 (a=${la}, b=${lb})`);
        await sleep(1000);
      }
      const [la] = await leaderOf();
      const [leader, follower] = la === 1 ? [a, b] : [b, a];
      assert.is(lease()?.spec.holderIdentity, leader.identity, "the Lease names the leader");
      assert.is(await follower.scans(), 0, "the follower never scanned");

      // Work: pods removed with no DEL. Only the leader releases.
      const w1 = pods(3);
      forceDelete(NS_LEAD, ...w1.map((h) => h.name));
      for (const h of w1) await waitReleased(h.address, 10_000, leader);
      assert.equal(
        (await leader.waitReleases((r) => r.pod.startsWith(`${NS_LEAD}/`), 3)).map((r) => r.address).sort(),
        w1.map((h) => h.address).sort(),
        "the leader logged the releases",
      );
      assert.equal(follower.releases(), [], `the follower released nothing:\n${follower.logTail()}`);
      assert.is(await follower.metric('berth_releases_total{reason="pod-deleted"}'), undefined);

      // SIGKILL the leader, then more work: the follower takes over and does it.
      const w2 = pods(3);
      const killedAt = Date.now();
      await leader.kill();
      forceDelete(NS_LEAD, ...w2.map((h) => h.name));
      await follower.waitLeader(20_000);
      const takeover = Date.now() - killedAt;
      console.error(`[ctllead] ${follower.identity} took over ${takeover} ms after ${leader.identity} was SIGKILLed`);
      assert.ok(takeover <= 15_000, `takeover within ~15 s (took ${takeover} ms)`);
      for (const h of w2) await waitReleased(h.address, 15_000, follower);
      assert.equal(
        (await follower.waitReleases((r) => r.pod.startsWith(`${NS_LEAD}/`), 3)).map((r) => `${r.address} ${r.reason}`).sort(),
        w2.map((h) => `${h.address} pod-deleted`).sort(),
        "the new leader released the second batch",
      );
      assert.is(lease()?.spec.holderIdentity, follower.identity);
      await waitForAllocated(P_LEAD, 0, 10_000);

      // A clean stop hands the lease over: a standby leads within a tick or two, not after 8 s.
      const cc = await startController({ identity: "ctl-c", resyncSeconds: 3 });
      await sleep(2500);
      assert.is(await cc.leader(), 0, "ctl-c waits while ctl-b leads");
      const stoppedAt = Date.now();
      await follower.stop();
      await cc.waitLeader(10_000);
      const handover = Date.now() - stoppedAt;
      console.error(`[ctllead] ctl-c led ${handover} ms after ${follower.identity} got SIGTERM`);
      assert.ok(handover <= 4500, `handover after SIGTERM within ~2 ticks (took ${handover} ms)`);
      await cc.stop();
      assert.is(lease()?.spec.holderIdentity, "", "the last replica left the lease free");
    }),
);

S.run();
